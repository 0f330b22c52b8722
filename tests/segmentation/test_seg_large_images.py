"""Very large images: segmentation in bounded memory, and the reader's decompression-bomb limit.

Truth: ``F.interpolate`` for the banded upsampling, hand-computed sizes, the whole-picture ``overlay``,
the network's own input sizes (recorded), a per-pixel model whose full-size labels are known, and
PNG headers written byte by byte (a 100-megapixel header costs nothing to write).
"""

from __future__ import annotations

import json
import logging
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import hrnet.segmentation.api as seg_api
from hrnet.cli import main
from hrnet.io import ImageReadError, read_image, read_pixel_limit
from hrnet.segmentation import Segmenter
from hrnet.segmentation.config import SegTestConfig
from hrnet.segmentation.datasets import read_label
from hrnet.segmentation.inference import (
    DEFAULT_MAX_PIXELS,
    fit_pixels,
    segment_image,
    segment_labels,
    upsample_argmax,
)
from hrnet.segmentation.visualize import overlay

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class PixelModel(nn.Module):
    """A per-pixel classifier (1x1 conv at full resolution) that records the size of every input."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, num_classes, 1)
        self.seen: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((int(x.shape[-2]), int(x.shape[-1])))
        return self.conv(x)


def _smooth_image(h: int, w: int) -> np.ndarray:
    """A synthetic photo: colour ramps and a disc, smooth at the scale of a few pixels."""
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    disc = ((y - 0.5) ** 2 + (x - 0.4) ** 2 < 0.06).astype(np.float32)
    rgb = np.stack([x + 0 * y, y + 0 * x, 0.3 + 0.6 * disc], axis=-1)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares (width, height) RGB pixels and holds none (an IDAT of nothing)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


# ---- the pieces -------------------------------------------------------------------------------------
def test_fit_pixels_hand_values() -> None:
    # 108 MP photo at the default 2**23: factor sqrt(8388608 / 108e6) = 0.27870; 9000 -> 2508, 12000 -> 3344
    assert fit_pixels(9000, 12000, DEFAULT_MAX_PIXELS) == (2508, 3344)
    assert 2508 * 3344 <= DEFAULT_MAX_PIXELS
    assert fit_pixels(1024, 2048, DEFAULT_MAX_PIXELS) == (1024, 2048)  # fits: unchanged
    assert fit_pixels(100, 100, 2500) == (50, 50)
    assert fit_pixels(1, 100_000, 10) == (1, 10)
    with pytest.raises(ValueError, match="max_pixels"):
        fit_pixels(10, 10, 0)


@pytest.mark.parametrize(
    "src, dst", [((7, 9), (50, 61)), ((16, 16), (16, 16)), ((10, 30), (3, 5)), ((33, 17), (100, 41))]
)
def test_upsample_argmax_equals_full_interpolation(src, dst) -> None:
    torch.manual_seed(0)
    scores = torch.randn(1, 5, *src)
    full = F.interpolate(scores, size=dst, mode="bilinear", align_corners=False)[0]
    labels = upsample_argmax(scores, dst, band_bytes=5 * dst[1] * 4 * 3)  # bands of 3 rows
    assert labels.shape == dst and labels.dtype == np.int64
    top2 = full.topk(2, dim=0).values
    clear = (top2[0] - top2[1]).numpy() > 1e-5  # away from float ties the labels must agree exactly
    np.testing.assert_array_equal(labels[clear], full.argmax(0).numpy()[clear])
    assert clear.mean() > 0.99


def test_small_images_are_segmented_exactly_as_before(city_files, tiny_model) -> None:
    model = tiny_model()
    rgb = read_image(city_files["image"])  # 128 x 256, under any budget used here
    test = SegTestConfig()
    expected = segment_image(model, rgb, test, mean=MEAN, std=STD, flip_perm=None)[0].argmax(0).numpy()
    got = segment_labels(model, rgb, test, mean=MEAN, std=STD, flip_perm=None, max_pixels=128 * 256)
    np.testing.assert_array_equal(got, expected)


def test_large_image_is_downscaled_for_the_network_and_labelled_at_full_size() -> None:
    rgb = _smooth_image(1200, 2000)  # 2.4 MP, segmented under a 0.3 MP budget
    model = PixelModel()
    test = SegTestConfig(scales=[1.0, 0.75], flip=True)  # every view is bounded, not only the first
    labels = segment_labels(model, rgb, test, mean=MEAN, std=STD, flip_perm=None, max_pixels=300_000)
    assert labels.shape == (1200, 2000) and labels.dtype == np.int64
    assert max(h * w for h, w in model.seen) <= 300_000
    # the per-pixel model's labels at full size are known; the downscaled path loses only the detail
    # near class boundaries (a few pixels wide) of this smooth picture
    model.seen.clear()
    full = segment_image(model, rgb, test, mean=MEAN, std=STD, flip_perm=None)[0].argmax(0).numpy()
    assert max(h * w for h, w in model.seen) == 1200 * 2000
    assert (labels == full).mean() > 0.99


# ---- the Segmenter and its result ---------------------------------------------------------------------
def test_segmenter_max_pixels_result_plot_and_counts(tiny_model, monkeypatch, caplog) -> None:
    rgb = _smooth_image(900, 1600)  # 1.44 MP
    seg = Segmenter(tiny_model(num_classes=5), class_names=list("abcde"), max_pixels=250_000)
    with caplog.at_level(logging.INFO, logger="hrnet"):
        res = seg(rgb)
    assert res.labels.shape == (900, 1600) and res.labels.dtype == np.int64
    assert any("1600x900 (1.4 MP) is above max_pixels 250000" in r.getMessage() for r in caplog.records)
    # the banded overlay is the whole-picture overlay, pixel for pixel (bands of 50 rows here)
    monkeypatch.setattr(seg_api, "PLOT_BAND_PIXELS", 50 * 1600)
    whole = overlay(rgb, res.labels, res.palette, res.class_names, alpha=0.4, legend=True)
    np.testing.assert_array_equal(res.plot(alpha=0.4), whole)
    np.testing.assert_array_equal(res.plot(legend=False), overlay(rgb, res.labels, res.palette, legend=False))
    values, counts = np.unique(res.labels, return_counts=True)
    assert res.pixel_counts() == {"abcde"[v]: int(n) for v, n in zip(values, counts)}
    with pytest.raises(ValueError, match="max_pixels"):
        Segmenter(tiny_model(), max_pixels=0)


def test_cli_large_image_bounded_and_no_raw_pil_warning(tmp_path, monkeypatch, capsys) -> None:
    """PIL's limit lowered to 1 MP: a 1.2 MP photo would warn (it does not), a 2.1 MP one is refused in
    one line; ``--max-pixels`` bounds what the network sees, the labels come back at full size."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    big, huge = tmp_path / "big.png", tmp_path / "huge.png"
    Image.fromarray(_smooth_image(1000, 1200)).save(big)
    Image.fromarray(_smooth_image(1300, 1600)).save(huge)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc = main(
            ["seg", "predict", str(big), "--model", "seg_hrnet_w18_small_v1", "--max-pixels", "200000"]
            + ["--runtime", "eager", "--out", str(tmp_path / "out"), "--device", "cpu"]
        )
    assert rc == 0
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    err = capsys.readouterr().err
    assert "DecompressionBomb" not in err and "Traceback" not in err
    run = tmp_path / "out" / "run-001"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4_000_000)  # this test reads the outputs with PIL itself
    assert read_label(run / "big.png.labels.png").shape == (1000, 1200)
    assert np.asarray(Image.open(run / "big.png")).shape[0] == 1000
    assert json.loads((run / "results.json").read_text())["done"] == 1

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    rc = main(["seg", "predict", str(huge), "--model", "seg_hrnet_w18_small_v1", "--out", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    line = next(ln for ln in err.splitlines() if "huge.png" in ln and "limit" in ln)
    assert "2-megapixel image" in line and "above the reader's limit of 2 MP" in line


# ---- the reader -------------------------------------------------------------------------------------
def test_reader_limit_on_real_size_headers(tmp_path) -> None:
    """A 108 MP header passes the limit silently (it then fails to decode: it holds no pixels); a 200 MP
    header is refused before anything is decoded. Both are one line naming the file."""
    assert read_pixel_limit() == 2 * Image.MAX_IMAGE_PIXELS >= 150_000_000
    photo, bomb = tmp_path / "photo108.png", tmp_path / "bomb200.png"
    photo.write_bytes(_png_header(12000, 9000))
    bomb.write_bytes(_png_header(20000, 10000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's DecompressionBombWarning would fail the test here
        with pytest.raises(ImageReadError, match="photo108.png: cannot decode image"):
            read_image(photo)
        with pytest.raises(ImageReadError) as info:
            read_image(bomb)
    message = str(info.value)
    assert message.startswith(f"{bomb}: 200-megapixel image is above the reader's limit of 179 MP")
    assert "\n" not in message
