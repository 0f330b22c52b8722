"""Cityscapes id tables against the cityscapesScripts definition and the real sample's own train-id file."""

from __future__ import annotations

import numpy as np
from PIL import Image

from hrnet.labels import flip_permutation
from hrnet.segmentation.datasets import CityscapesDataset, read_label
from hrnet.segmentation.labels import (
    CITYSCAPES_CLASS_WEIGHTS,
    CITYSCAPES_CLASSES,
    CITYSCAPES_LABELS,
    LIP_CLASSES,
    PASCAL_CONTEXT_CLASSES,
    cityscapes_id_to_train_id,
    default_palette,
)

# (labelId, trainId) for the 19 evaluated classes, written from the cityscapesScripts labels table
EVALUATED = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}


def test_cityscapes_table_facts():
    lut = cityscapes_id_to_train_id()
    assert len([lab for lab in CITYSCAPES_LABELS if lab.id >= 0]) == 34
    for raw in range(34):
        assert lut[raw] == EVALUATED.get(raw, 255), raw
    assert (lut[34:] == -1).all()  # anything above 33 is not a Cityscapes id
    assert CITYSCAPES_CLASSES[0] == "road" and CITYSCAPES_CLASSES[13] == "car" and CITYSCAPES_CLASSES[18] == "bicycle"
    assert len(CITYSCAPES_CLASS_WEIGHTS) == 19
    assert len(PASCAL_CONTEXT_CLASSES) == 59 and len(set(PASCAL_CONTEXT_CLASSES)) == 59
    assert len(LIP_CLASSES) == 20 and LIP_CLASSES[14] == "left-arm" and LIP_CLASSES[19] == "right-shoe"


def test_label_ids_to_train_ids_matches_the_sample(city_root, city_files):
    """labelIds -> trainIds reproduces the sample's labelTrainIds file.

    The two files of this 256x128 sample were resized independently from the full-resolution frame
    (mmseg's test fixture), so they disagree on 77 of 32768 pixels, all on object boundaries. The test
    asserts the mapping exactly everywhere else and that each disagreement is a boundary pixel whose
    train id occurs within 2 pixels in the mapped map.
    """
    raw = read_label(city_files["label_ids"])
    expected = np.asarray(Image.open(city_files["train_ids"])).astype(np.int64)
    mapped = cityscapes_id_to_train_id()[raw]
    diff = np.argwhere(mapped != expected)
    assert len(diff) <= 77  # 0.23 % of the pixels
    assert set(np.unique(mapped)) == set(np.unique(expected))
    for y, x in diff:
        window = mapped[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3]
        assert len(np.unique(window)) > 1 and expected[y, x] in window, (y, x)
    # the dataset class applies the same table, and reads the train-id files unchanged
    ds = CityscapesDataset(city_root, "val")
    _, label = ds.load(0)
    np.testing.assert_array_equal(label, mapped)
    _, label2 = CityscapesDataset(city_root, "val", label_suffix="labelTrainIds").load(0)
    np.testing.assert_array_equal(label2, expected)


def test_palette_and_flip_permutation():
    pal = default_palette(21)
    assert pal[0] == (0, 0, 0) and pal[1] == (128, 0, 0) and pal[2] == (0, 128, 0) and pal[15] == (192, 128, 128)
    perm = flip_permutation(20, ((14, 15), (16, 17), (18, 19)))
    assert perm[14] == 15 and perm[15] == 14 and perm[19] == 18 and perm[:14] == list(range(14))
