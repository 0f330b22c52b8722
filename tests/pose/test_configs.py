"""The shipped pose configs load and carry the paper's recipe."""

from __future__ import annotations

from pathlib import Path

import pytest

from hrnet.engine.config import load_config
from hrnet.pose.config import PoseConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "pose"
OFFICIAL = {
    "coco/w32_256x192.yaml": ("pose_hrnet_w32", [192, 256]),
    "coco/w32_384x288.yaml": ("pose_hrnet_w32", [288, 384]),
    "coco/w48_256x192.yaml": ("pose_hrnet_w48", [192, 256]),
    "coco/w48_384x288.yaml": ("pose_hrnet_w48", [288, 384]),
    "mpii/w32_256x256.yaml": ("pose_hrnet_w32", [256, 256]),
}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_recipe(name):
    cfg = load_config(PoseConfig, CONFIGS / name)
    model, size = OFFICIAL[name]
    assert (cfg.model.name, cfg.data.input_size) == (model, size)
    assert cfg.train.optim.name == "adam" and cfg.train.optim.lr == 1e-3
    assert cfg.train.schedule.milestones == [170, 200] and cfg.train.schedule.gamma == 0.1
    assert cfg.train.epochs == 210 and cfg.train.batch_size == 32 and cfg.data.sigma == 2.0
    assert cfg.test.flip_test and cfg.test.shift_heatmap and cfg.test.oks_thr == 0.9 and cfg.test.in_vis_thr == 0.2


def test_unknown_key_is_named():
    with pytest.raises(ValueError, match="data.input_sise"):
        load_config(PoseConfig, CONFIGS / "sample" / "tiny.yaml", ["data.input_sise=[1,2]"])
