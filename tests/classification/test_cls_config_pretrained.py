"""Configs carry the paper's recipe; LR scaling; pretrained weights from local files (hub mocked)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import hrnet
from hrnet.classification import Classifier, ClsConfig, ClsModelConfig, build_model, scaled_lr
from hrnet.engine.config import load_config

from .conftest import TINY

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "cls"
WIDTHS = ("w18_small_v1", "w18_small_v2", "w18", "w30", "w32", "w40", "w44", "w48", "w64")


@pytest.mark.parametrize("width", WIDTHS)
def test_official_configs_hold_the_appendix_a_recipe(width):
    cfg = load_config(ClsConfig, CONFIGS / "imagenet" / f"hrnet_{width}.yaml")
    assert cfg.model.name == f"hrnet_{width}" and cfg.model.num_classes == 1000 and cfg.model.head == "c"
    o, s, t = cfg.train.optim, cfg.train.schedule, cfg.train
    # paper, Appendix A: SGD, Nesterov momentum 0.9, wd 1e-4, lr 0.1 for batch 256, 100 epochs, /10 at 30/60/90
    assert (o.name, o.momentum, o.nesterov, o.weight_decay, o.lr) == ("sgd", 0.9, True, 1e-4, 0.1)
    assert cfg.lr_reference_batch == 256 and t.epochs == 100
    assert (s.name, s.milestones, s.gamma) == ("multistep", [30, 60, 90], 0.1)
    assert (cfg.data.crop_size, cfg.data.resize_size, cfg.data.crop_scale) == (224, 256, [0.08, 1.0])
    hrnet.create_model(cfg.model.name)  # the name is one the zoo knows


def test_sample_config_loads():
    cfg = load_config(ClsConfig, CONFIGS / "sample" / "tiny_imagenet_sample.yaml")
    assert cfg.data.train.endswith("imagenet_sample/labels.txt") and cfg.model.overrides()["width"] == 8


def test_linear_lr_scaling():
    assert scaled_lr(0.1, 64, 4, 1, 256) == pytest.approx(0.1)  # 4 GPUs x 64 = the paper's 256
    assert scaled_lr(0.1, 32, 4, 1, 256) == pytest.approx(0.05)  # the official repo's 4 x 32
    assert scaled_lr(0.1, 64, 8, 2, 256) == pytest.approx(0.4)  # accumulation counts towards the batch
    assert scaled_lr(0.1, 7, 3, 1, 0) == 0.1  # 0 = no scaling


def test_pretrained_file_reinitialises_a_classifier_of_another_size(tmp_path, caplog):
    torch.manual_seed(0)
    imagenet = hrnet.create_model("hrnet_w18_small_v1", num_classes=1000, **TINY)
    path = hrnet.save_weights(imagenet, tmp_path / "in1k.safetensors")
    cfg = ClsModelConfig(
        name="hrnet_w18_small_v1",
        num_classes=21,
        pretrained=str(path),
        width=8,
        stage_blocks=[1, 1, 1],
        stem_width=16,
        stage1_channels=16,
    )
    with caplog.at_level(logging.WARNING, logger="hrnet"):
        model = build_model(ClsConfig(model=cfg))
    assert "predict 1000 classes, the model 21: classifier re-initialised" in caplog.text
    key = "final_layer.0.weight"  # the head's 1x1 conv to 2048 channels: loaded from the file
    torch.testing.assert_close(model.state_dict()[key], imagenet.state_dict()[key])


def test_weights_hub_uses_the_hub_download(tmp_path, monkeypatch, sample):
    """``Classifier(..., weights="hub")`` goes through the foundation's hub download (mocked: no network)."""
    import hrnet.models.sources as weights_mod

    torch.manual_seed(1)
    published = hrnet.create_model("hrnet_w18_small_v1", num_classes=1000, **TINY)
    path = hrnet.save_weights(published, tmp_path / "model.safetensors")
    asked: list[str] = []

    def fake_download(repo_id: str, filename: str = "model.safetensors") -> Path:
        asked.append(repo_id)
        return path

    monkeypatch.setattr(weights_mod, "hub_download", fake_download)
    clf = Classifier("hrnet_w18_small_v1", weights="hub", device="cpu", **TINY)
    assert asked == ["timm/hrnet_w18_small.ms_in1k"]
    image = sample / "images" / "n04285008_sports_car.JPEG"
    with torch.no_grad():
        expected = published.eval()(clf.preprocess(image)[None])
    torch.testing.assert_close(clf.logits([image]), expected)
    assert clf.class_names[817] == "sports car"
