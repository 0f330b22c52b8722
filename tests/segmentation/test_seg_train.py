"""Training through the shared engine on the one real Cityscapes frame."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path

import pytest
import torch

import hrnet
from hrnet.engine.config import load_config
from hrnet.segmentation.config import SegConfig
from hrnet.segmentation.train import build_dataset, build_model, evaluate, evaluate_dataset, train

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "seg"


def _cfg(city_root, *overrides):
    return load_config(SegConfig, CONFIGS / "cityscapes_sample" / "tiny.yaml", [f"data.root={city_root}", *overrides])


def test_shipped_configs_load_with_the_paper_recipe():
    expect = {  # file: (model, classes, lr, weight decay, crop)
        "cityscapes/w48.yaml": ("seg_hrnet_w48", 19, 0.01, 5e-4, [512, 1024]),
        "cityscapes/w18.yaml": ("seg_hrnet_w18", 19, 0.01, 5e-4, [512, 1024]),
        "cityscapes/w18_small_v1.yaml": ("seg_hrnet_w18_small_v1", 19, 0.01, 5e-4, [512, 1024]),
        "cityscapes/w18_small_v2.yaml": ("seg_hrnet_w18_small_v2", 19, 0.01, 5e-4, [512, 1024]),
        "pascal_context/w48_59.yaml": ("seg_hrnet_w48", 59, 0.004, 1e-4, [480, 480]),
        "pascal_context/w48_60.yaml": ("seg_hrnet_w48", 60, 0.004, 1e-4, [480, 480]),
        "lip/w48.yaml": ("seg_hrnet_w48", 20, 0.007, 5e-4, [473, 473]),
    }
    for name, (model, classes, lr, wd, crop) in expect.items():
        cfg = load_config(SegConfig, CONFIGS / name)
        assert (cfg.model.name, cfg.data.num_classes, cfg.data.crop_size) == (model, classes, crop), name
        assert (cfg.train.optim.name, cfg.train.optim.lr, cfg.train.optim.weight_decay) == ("sgd", lr, wd), name
        assert cfg.train.optim.momentum == 0.9 and cfg.train.schedule.name == "poly", name
        assert cfg.train.schedule.power == 0.9 and cfg.train.sync_bn, name
    lip = load_config(SegConfig, CONFIGS / "lip/w48.yaml")
    assert lip.test.flip and lip.data.resize_to == [473, 473]
    city = load_config(SegConfig, CONFIGS / "cityscapes/w48.yaml")
    assert city.data.scale_range == [0.5, 2.0] and len(city.loss.class_weights) == 19
    assert city.train.batch_size * 4 == 12 and city.loss.ohem_thresh == 0.9 and city.loss.ohem_min_kept == 131072


def test_short_training_run_writes_the_engine_outputs(tmp_path, city_root):
    cfg = _cfg(
        city_root, "data.repeat=2", "train.epochs=1", "train.eval_every=1", "loss.ohem=true", "loss.ohem_min_kept=1000"
    )
    before = copy.deepcopy(cfg)
    metrics = train(cfg, tmp_path / "run", device="cpu")
    assert cfg == before  # the caller's config is never changed
    assert set(metrics) == {"mIoU", "pixel_acc", "mean_acc"}
    for f in ("last.pt", "best.pt", "model_best.safetensors", "metrics.jsonl", "config.yaml"):
        assert (tmp_path / "run" / f).is_file(), f
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(x.get("type") == "eval" and "mIoU" in x for x in lines)
    # evaluation neither: a training start file in the config is left as it is (and not loaded)
    start = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pretrained=str(tmp_path / "start.pth")))
    before = copy.deepcopy(start)
    scores = evaluate(start, tmp_path / "run" / "model_best.safetensors", device="cpu")
    assert start == before
    assert scores["mIoU"] == pytest.approx(metrics["mIoU"], abs=1e-6)


@pytest.mark.slow
def test_overfits_one_cityscapes_frame(tmp_path, city_root):
    """200 Adam steps (poly LR) of a tiny HRNetV2 on the 256x128 frame: mIoU over the present classes >= 0.8.

    About 15-30 s on an idle 2-core CPU; several minutes when the machine is shared, hence ``slow``.
    """
    torch.set_num_threads(2)
    cfg = _cfg(city_root)  # 4 epochs x 50 iterations, whole-image evaluation on the same frame
    start = time.perf_counter()
    metrics = train(cfg, tmp_path / "run", device="cpu")
    print(f"overfit: {metrics} in {time.perf_counter() - start:.1f}s")
    assert metrics["mIoU"] >= 0.8
    # the saved best weights reproduce the score through the evaluation path
    model = build_model(cfg)
    hrnet.load_weights(model, tmp_path / "run" / "model_best.safetensors")
    again = evaluate_dataset(model, build_dataset(cfg.data, "val", train=False), cfg.test)
    assert again["mIoU"] == pytest.approx(metrics["mIoU"], abs=1e-6)
    assert sum(v is not None for v in again["per_class"].values()) >= 10
