"""Class names, datasets, transforms and bad input, on the real ImageNet sample."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hrnet.classification.classes import imagenet_classes, read_classes
from hrnet.classification.datasets import build_dataset, collate_skip, scan_image_folder
from hrnet.classification.evaluation import evaluate_classifier
from hrnet.classification.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform, train_transform
from hrnet.io import ImageReadError


def test_shipped_class_names_follow_the_standard_order(sample, labels):
    classes = imagenet_classes()
    assert len(classes) == 1000 and len({w for w, _ in classes}) == 1000
    assert [w for w, _ in classes] == sorted(w for w, _ in classes)
    # the facts listed in shared/data/README.md
    assert classes[0] == ("n01440764", "tench") and classes[1][1] == "goldfish"
    assert classes[207][1] == "golden retriever" and classes[281][1] == "tabby"
    assert classes[817][1] == "sports car"
    for entry in labels:  # every sample image: its index gives its wnid and name
        assert classes[entry["class_index"]] == (entry["wnid"], entry["class_name"])
    listed = [line.split() for line in (sample / "imagenet1k_wnids_sorted.txt").read_text().splitlines()]
    assert [(int(i), w) for i, w, _ in listed] == [(i, w) for i, (w, _) in enumerate(classes)]


def test_image_folder_maps_sorted_folders_to_indices(sample_folder, labels):
    ds = build_dataset(sample_folder)
    assert len(ds) == 21 and ds.classes == sorted(e["wnid"] for e in labels)
    for path, label in ds.samples:
        assert path.parent.name == ds.classes[label]
    # with the 1000 ImageNet ids as the class list, labels are the ImageNet indices of labels.json
    ds = build_dataset(sample_folder, classes=[w for w, _ in imagenet_classes()], num_classes=1000)
    by_wnid = {e["wnid"]: e["class_index"] for e in labels}
    assert all(label == by_wnid[path.parent.name] for path, label in ds.samples)


def test_list_file_gives_imagenet_indices(sample, labels):
    ds = build_dataset(sample / "labels.txt", num_classes=1000)
    assert sorted(ds.targets) == sorted(e["class_index"] for e in labels)
    image, label = ds[0]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and label == 0


def test_eval_transform_equals_timm_preprocessing(sample):
    timm_data = pytest.importorskip("timm.data")
    theirs = timm_data.create_transform(input_size=224, interpolation="bilinear", crop_pct=0.875)
    ours = eval_transform(224, 256)
    for path in sorted((sample / "images").iterdir())[:6]:
        image = Image.open(path).convert("RGB")
        a, b = ours(image), theirs(image)
        assert a.shape == (3, 224, 224)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_train_transform_crops_flips_and_normalises(sample):
    image = Image.open(sorted((sample / "images").iterdir())[0]).convert("RGB")
    torch.manual_seed(0)
    out = torch.stack([train_transform(64)(image) for _ in range(8)])
    assert out.shape == (8, 3, 64, 64) and out.dtype == torch.float32
    assert not torch.equal(out[0], out[1])  # random crops differ
    # the whole square image, always flipped: equals a hand-made mirror of the normalised pixels
    whole = train_transform(64, scale=(1.0, 1.0), hflip=1.0)
    torch.manual_seed(1)
    flipped = whole(image.resize((64, 64)))
    plain = torch.from_numpy(np.asarray(image.resize((64, 64)), dtype=np.float32)) / 255
    plain = (plain - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(flipped, plain.permute(2, 0, 1).flip(-1), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="crop scale"):
        train_transform(64, scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="resize"):
        eval_transform(224, 200)


# ------------------------------------------------------------------------------------------------ bad input
def _copy_folder(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_empty_class_folder_is_an_error_naming_it(sample_folder, tmp_path):
    root = _copy_folder(sample_folder, tmp_path / "data")
    (root / "n99999999").mkdir()
    (root / "n99999999" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"n99999999: class folder holds no images"):
        build_dataset(root)


def test_missing_root_and_flat_folder_are_errors(tmp_path, sample):
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        scan_image_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="no class folders"):
        build_dataset(sample / "images")  # images without class folders
    with pytest.raises(ValueError, match="not among the model's 3 classes"):
        scan_image_folder(sample.parent / "imagenet_sample", classes=["a", "b", "c"])


def test_unreadable_images_are_skipped_counted_and_logged(sample_folder, tmp_path, caplog):
    root = _copy_folder(sample_folder, tmp_path / "data")
    bad = [root / "n01440764" / "truncated.jpg", root / "n01443537" / "empty.JPEG"]
    bad[0].write_bytes((root / "n01440764" / "n01440764_tench.JPEG").read_bytes()[:300])
    bad[1].write_bytes(b"")
    ds = build_dataset(root, eval_transform(64, 73))
    assert len(ds) == 23
    with caplog.at_level(logging.WARNING, logger="hrnet.classification.datasets"):
        batch = collate_skip([ds[i] for i in range(len(ds))])
    assert batch[0].shape == (21, 3, 64, 64) and batch[2] == 2
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert all(str(p) in logged for p in bad)
    # evaluation scores the 21 readable images and reports the 2 it skipped
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 21))
    metrics = evaluate_classifier(model, ds, batch_size=8)
    assert metrics["count"] == 21 and metrics["skipped"] == 2
    # the strict policy raises, naming the file
    strict = build_dataset(root, eval_transform(64, 73), bad_images="error")
    index = [i for i, (p, _) in enumerate(strict.samples) if p == bad[0]][0]
    with pytest.raises(ImageReadError, match="truncated.jpg"):
        strict[index]


def test_list_file_errors_name_file_and_line(tmp_path, sample):
    lst = tmp_path / "val.txt"
    lst.write_text(f"{sample}/images/n01440764_tench.JPEG 0\nbroken-line\n")
    with pytest.raises(ValueError, match=r"val.txt:2: expected '<image path> <class index>'"):
        build_dataset(lst)
    lst.write_text(f"{sample}/images/n01440764_tench.JPEG 1000\n")
    with pytest.raises(ValueError, match=r"val.txt:1: class index 1000 outside \[0, 1000\)"):
        build_dataset(lst, num_classes=1000)
    lst.write_text("missing.jpg 3\n")
    with pytest.raises(FileNotFoundError, match=r"val.txt:1: image .*missing.jpg not found"):
        build_dataset(lst)


def test_class_file_round_trip_and_errors(tmp_path):
    from hrnet.classification.classes import write_classes

    path = tmp_path / "classes.txt"
    write_classes([("n1", "cat"), ("dog", "dog")], path)
    assert read_classes(path) == [("n1", "cat"), ("dog", "dog")]
    path.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="holds no class names"):
        read_classes(path)
