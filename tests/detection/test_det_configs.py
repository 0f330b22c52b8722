"""Every recipe in configs/det loads, names a detector, and states the paper's schedule and batch."""

from __future__ import annotations

import pytest

from hrnet.detection.config import DetConfig
from hrnet.detection.model import parse_name
from hrnet.engine.config import load_config

from .conftest import REPO

CONFIGS = sorted((REPO / "configs" / "det").rglob("*.yaml"))
SCHEDULES = {"1x": (12, [8, 11]), "2x": (24, [16, 22]), "20e": (20, [16, 19])}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe(path):
    cfg = load_config(DetConfig, path)
    framework, backbone = parse_name(cfg.model.name)
    if path.parent.name == "sample":
        return
    assert framework == path.parent.name and backbone == f"hrnet_{path.stem.split('_')[0]}"
    assert cfg.model.pretrained is True and cfg.data.min_size[-1] == (512 if framework == "centernet" else 800)
    schedule = path.stem.split("_")[1]
    if schedule in SCHEDULES:
        assert (cfg.train.epochs, cfg.train.schedule.milestones) == SCHEDULES[schedule]
        total = cfg.train.batch_size * (8 if cfg.train.batch_size == 2 else 4)  # 16 images per step
        assert total == 16 and cfg.train.optim.lr == (0.01 if framework in ("fcos", "retinanet") else 0.02)
        assert cfg.train.clip_grad_norm == 35.0 and cfg.train.schedule.warmup_iters == 500
        assert cfg.model.norm_eval == (not path.stem.endswith("_ms") or framework == "fcos")
