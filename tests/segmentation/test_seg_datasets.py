"""Dataset formats and bad input: sizes, values, missing files, 16-bit and palette PNGs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from hrnet.segmentation.datasets import (
    CityscapesDataset,
    FolderDataset,
    LabelError,
    LIPDataset,
    PascalContextDataset,
    read_label,
)
from hrnet.segmentation.transforms import TrainTransform


def _write(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)
    return path


def _copy_city(src, dst):
    shutil.copytree(src / "leftImg8bit", dst / "leftImg8bit")
    shutil.copytree(src / "gtFine", dst / "gtFine")
    return dst / "gtFine" / "val" / "frankfurt" / "frankfurt_000000_000294_gtFine_labelIds.png"


def test_label_size_mismatch_names_both_files(city_root, tmp_path):
    label = _copy_city(city_root, tmp_path)
    raw = np.asarray(Image.open(label))
    _write(label, np.ascontiguousarray(raw[:100]))
    with pytest.raises(LabelError, match="differs from image") as err:
        CityscapesDataset(tmp_path, "val").load(0)
    assert "labelIds.png" in str(err.value) and "leftImg8bit.png" in str(err.value)
    assert "256x100" in str(err.value) and "256x128" in str(err.value)


def test_out_of_range_values_name_file_and_values(city_root, tmp_path):
    label = _copy_city(city_root, tmp_path)
    raw = np.asarray(Image.open(label)).copy()
    raw[0, :5] = 40
    raw[1, 0] = 200
    _write(label, raw)
    with pytest.raises(LabelError, match=r"values \[40, 200\] \(6 pixels\)") as err:
        CityscapesDataset(tmp_path, "val").load(0)
    assert str(label) in str(err.value)
    # train-id files: 19 is not a class, 255 is ignored
    tid = tmp_path / "gtFine" / "val" / "frankfurt" / "frankfurt_000000_000294_gtFine_labelTrainIds.png"
    arr = np.asarray(Image.open(tid)).copy()
    arr[5, 5] = 19
    _write(tid, arr)
    with pytest.raises(LabelError, match=r"values \[19\].*valid raw values: 0-18, 255"):
        CityscapesDataset(tmp_path, "val", label_suffix="labelTrainIds").load(0)


def test_missing_files(city_root, tmp_path):
    label = _copy_city(city_root, tmp_path)
    label.unlink()
    with pytest.raises(FileNotFoundError, match="label file for image .*leftImg8bit.png not found"):
        CityscapesDataset(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="Cityscapes image folder not found"):
        CityscapesDataset(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="label file not found"):
        read_label(tmp_path / "nope.png")


def test_16bit_palette_rgb_and_corrupt_labels(tmp_path):
    small = np.array([[0, 1], [2, 255]], dtype=np.uint16)
    p16 = tmp_path / "small16.png"
    Image.fromarray(small).save(p16)
    assert Image.open(p16).mode.startswith("I")
    np.testing.assert_array_equal(read_label(p16), small)  # documented: accepted when values fit in 8 bits
    big = tmp_path / "big16.png"
    Image.fromarray(np.array([[0, 1000]], dtype=np.uint16)).save(big)
    with pytest.raises(LabelError, match=r"big16.png: .*values up to 1000"):
        read_label(big)
    # palette PNG: read as indices, whatever the colours
    pal = Image.fromarray(np.array([[0, 3], [7, 255]], dtype=np.uint8), mode="P")
    pal.putpalette([255, 0, 0] * 256)
    pal.save(tmp_path / "pal.png")
    np.testing.assert_array_equal(read_label(tmp_path / "pal.png"), [[0, 3], [7, 255]])
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(LabelError, match="rgb.png: label image is RGB"):
        read_label(tmp_path / "rgb.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(LabelError, match="bad.png: cannot decode"):
        read_label(tmp_path / "bad.png")


def test_real_palette_png_as_label(city_root):
    """The 1024x512 demo frame is a palette PNG: as a label it is its indices (here 0..198)."""
    arr = read_label(city_root / "unlabelled_fullres" / "cityscapes_demo_1024x512.png")
    assert arr.shape == (512, 1024) and arr.max() == 198


def _context(tmp_path, values):
    root = tmp_path / "ctx"
    _write(root / "JPEGImages" / "a.jpg", np.full((6, 8, 3), 100, np.uint8))
    _write(root / "SegmentationClassContext" / "a.png", values.astype(np.uint8))
    (root / "val.txt").write_text("a\n")
    return root


def test_pascal_context_59_and_60(tmp_path):
    values = np.zeros((6, 8), np.int64)
    values[0, :4] = [1, 2, 59, 255]
    root = _context(tmp_path, values)
    _, l59 = PascalContextDataset(root, "val", num_classes=59).load(0)
    _, l60 = PascalContextDataset(root, "val", num_classes=60).load(0)
    assert l59[0, :4].tolist() == [0, 1, 58, 255] and l59[1, 0] == 255  # background ignored, c -> c-1
    assert l60[0, :4].tolist() == [1, 2, 59, 255] and l60[1, 0] == 0  # background is class 0
    ds = PascalContextDataset(root, "val", num_classes=60)
    assert ds.class_names[0] == "background" and ds.class_names[59] == "wood"
    values[2, 2] = 60
    root = _context(tmp_path / "b", values)
    with pytest.raises(LabelError, match=r"values \[60\]"):
        PascalContextDataset(root, "val", num_classes=59).load(0)
    with pytest.raises(FileNotFoundError, match="split list not found"):
        PascalContextDataset(root, "train")


def test_folder_dataset(tmp_path):
    root = tmp_path / "mine"
    (root).mkdir()
    (root / "classes.yaml").write_text(
        "names: [sky, sea, boat]\ncolors: [[0,0,255],[0,128,255],[255,0,0]]\nignore_index: 9\n"
    )
    _write(root / "images" / "x.png", np.zeros((4, 5, 3), np.uint8))
    _write(root / "masks" / "x.png", np.array([[0, 1, 2, 9, 0]] * 4, np.uint8))
    ds = FolderDataset(root, "train")
    assert ds.class_names == ["sky", "sea", "boat"] and ds.palette[2] == (255, 0, 0)
    _, label = ds.load(0)
    assert label[0].tolist() == [0, 1, 2, 255, 0]  # the file's ignore value becomes 255 inside
    (root / "classes.yaml").write_text("names: [a, b]\nignore_index: 1\n")
    with pytest.raises(ValueError, match="ignore_index 1 must lie in 2..255"):
        FolderDataset(root, "train")


def test_train_transform_shapes_and_padding(lip_root):
    ds = LIPDataset(lip_root, "val")  # 130x377 (WxH) grayscale image, converted to RGB
    image, label = ds.load(0)
    assert image.shape == (377, 130, 3)
    t = TrainTransform(crop_size=(200, 160), base_size=0, scale_range=(0.5, 2.0), flip=True, flip_pairs=ds.flip_pairs)
    for seed in range(4):
        x, y = t(image, label, np.random.default_rng(seed))
        assert x.shape == (3, 200, 160) and y.shape == (200, 160) and y.dtype == torch.int64
        assert set(torch.unique(y).tolist()) <= set(range(20)) | {255}
    # at scale 0.5 the image is 188x65 (HxW, round half to even): padded with ignore up to 200x160
    t = TrainTransform(crop_size=(200, 160), base_size=0, scale_range=(0.5, 0.5), flip=False)
    x, y = t(image, label, np.random.default_rng(0))
    assert (y[:188, :65] != 255).all() and (y[188:] == 255).all() and (y[:, 65:] == 255).all()
    assert (x[:, 188:] == x[:, 199:, 159:]).all()  # padded image pixels are one constant (0 before normalising)
    # deterministic per (seed, epoch, index)
    ds.transform = TrainTransform(crop_size=(100, 100), base_size=0)
    a, b = ds[0], ds[0]
    torch.testing.assert_close(a["image"], b["image"])
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["image"], a["image"])
