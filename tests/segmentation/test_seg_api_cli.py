"""Segmenter API, official / mmseg checkpoint loading, and the `hrnet seg` verbs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hrnet
from hrnet.segmentation import Segmenter
from hrnet.segmentation.datasets import read_label
from hrnet.segmentation.labels import CITYSCAPES_CLASS_WEIGHTS, CITYSCAPES_PALETTE

TINY = {"stage_blocks": (1, 1, 1)}
TINY_CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "seg" / "cityscapes_sample" / "tiny.yaml")


def _randomise_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics, so a load that skipped them would change the output."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def test_segmenter_on_the_real_image(city_files, tiny_model):
    model = tiny_model()
    seg = Segmenter(model, dataset="cityscapes")
    res = seg(city_files["image"], return_probs=True)
    assert res.labels.shape == (128, 256) and res.labels.dtype == np.int64
    assert res.probs.shape == (19, 128, 256)
    np.testing.assert_allclose(res.probs.sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(res.probs.argmax(0), res.labels)
    picture = res.plot()
    assert picture.shape[0] == 128 and picture.shape[1] > 256 and picture.dtype == np.uint8  # legend appended
    assert seg(np.asarray(Image.open(city_files["image"]))).labels.tolist() == res.labels.tolist()  # array input
    assert seg.palette[:19] == list(CITYSCAPES_PALETTE) and seg.class_names[0] == "road"
    assert seg(city_files["image"]).probs is None


def test_official_and_mmseg_checkpoints_load_into_the_segmenter(tmp_path, city_files, tiny_model):
    model = tiny_model()
    _randomise_bn(model)
    with torch.no_grad():
        model.last_layer[0].bias.zero_()  # mmseg's head conv has no bias
    own = model.state_dict()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = model(x)

    official = {f"model.{k}": v for k, v in own.items() if not k.endswith("num_batches_tracked")}
    official["loss.criterion.weight"] = torch.tensor(CITYSCAPES_CLASS_WEIGHTS)
    torch.save(official, tmp_path / "official.pth")

    heads = {
        "last_layer.0.": "decode_head.convs.0.conv.",
        "last_layer.1.": "decode_head.convs.0.bn.",
        "last_layer.3.": "decode_head.conv_seg.",
    }
    mmseg = {}
    for k, v in own.items():
        prefix = next((p for p in heads if k.startswith(p)), None)
        if prefix is None:
            mmseg[f"backbone.{k}"] = v
        elif k != "last_layer.0.bias":
            mmseg[heads[prefix] + k[len(prefix) :]] = v
    torch.save({"meta": {"CLASSES": ["road"]}, "state_dict": mmseg}, tmp_path / "mmseg.pth")
    hrnet.save_weights(model, tmp_path / "ours.safetensors")

    for name in ("official.pth", "mmseg.pth", "ours.safetensors"):
        seg = Segmenter("seg_hrnet_w18_small_v1", weights=tmp_path / name, dataset="cityscapes", **TINY)
        assert seg.num_classes == 19  # read from the file's last layer
        with torch.no_grad():
            torch.testing.assert_close(seg.model(x), expected, rtol=1e-5, atol=1e-5, msg=name)
    # a checkpoint of another class count is refused with the shapes named
    other = tiny_model(num_classes=7)
    with pytest.raises(ValueError, match="last_layer.3.weight"):
        Segmenter(other, weights=tmp_path / "ours.safetensors")


def _tiny_overrides(city_root, **extra):
    sets = [f"data.root={city_root}", "train.log_every=1"]
    sets += [f"{k}={v}" for k, v in extra.items()]
    return sets


def test_cli_eval_json_and_predict(tmp_path, city_root, city_files, tiny_model):
    from hrnet.cli import main

    model = tiny_model()
    hrnet.save_weights(model, tmp_path / "w.safetensors")
    out_json = tmp_path / "scores.json"
    rc = main(
        [
            "seg",
            "eval",
            "--config",
            TINY_CONFIG,
            "--weights",
            str(tmp_path / "w.safetensors"),
            "--json",
            str(out_json),
            "--device",
            "cpu",
            "--set",
            *_tiny_overrides(city_root),
        ]
    )
    assert rc == 0
    scores = json.loads(out_json.read_text())
    assert set(scores) == {"mIoU", "pixel_acc", "mean_acc", "per_class"}
    assert list(scores["per_class"])[:2] == ["road", "sidewalk"] and len(scores["per_class"]) == 19
    # independent check of the written numbers: the API's prediction scored by counting pixels
    labels = Segmenter(model)(city_files["image"]).labels
    gt = read_label(city_files["train_ids"])
    keep = gt != 255
    assert scores["pixel_acc"] == pytest.approx(float((labels[keep] == gt[keep]).mean()), abs=0.003)

    rc = main(
        [
            "seg",
            "predict",
            str(city_files["image"]),
            "--config",
            TINY_CONFIG,
            "--weights",
            str(tmp_path / "w.safetensors"),
            "--out",
            str(tmp_path / "pred"),
            "--set",
            *_tiny_overrides(city_root),
        ]
    )
    assert rc == 0
    name = "frankfurt_000000_000294_leftImg8bit.png"
    run = tmp_path / "pred" / "run-001"
    label_png = run / f"{name}.labels.png"
    assert Image.open(label_png).mode == "P"
    np.testing.assert_array_equal(read_label(label_png), labels)
    record = json.loads((run / "results.json").read_text())["results"][0]
    assert record["label_file"] == label_png.name and sum(record["classes"].values()) == labels.size
    overlay = np.asarray(Image.open(run / name))
    assert overlay.shape[0] == 128 and overlay.shape[1] > 256


def test_cli_errors_are_clear(tmp_path, city_root, capsys):
    from hrnet.cli import main

    rc = main(
        [
            "seg",
            "eval",
            "--config",
            TINY_CONFIG,
            "--weights",
            str(tmp_path / "missing.safetensors"),
            "--set",
            *_tiny_overrides(city_root),
        ]
    )
    assert rc == 2 and "missing.safetensors" in capsys.readouterr().err
    rc = main(["seg", "eval", "--config", TINY_CONFIG, "--weights", "x", "--set", "data.bogus=1"])
    assert rc == 2 and "data.bogus" in capsys.readouterr().err
