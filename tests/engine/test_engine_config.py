"""Config dataclasses <-> YAML: round trip, nested overrides, unknown keys, wrong types."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from hrnet.cli_common import add_run_options
from hrnet.engine import (
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
    config_to_dict,
    load_config,
    save_config,
)


@dataclass
class DataCfg:
    root: Path = Path("data/coco")
    image_size: tuple[int, int] = (256, 192)
    classes: list[str] = field(default_factory=lambda: ["person"])
    sigma: float | None = 2.0


@dataclass
class TaskCfg:
    model: str = "pose_hrnet_w32"
    data: DataCfg = field(default_factory=DataCfg)
    train: TrainConfig = field(default_factory=TrainConfig)
    extra: dict[str, float] = field(default_factory=dict)


def test_defaults_match_the_contract():
    cfg = TrainConfig()
    assert (cfg.epochs, cfg.batch_size, cfg.workers, cfg.amp, cfg.accum_steps) == (1, 32, 2, "none", 1)
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.betas) == ("sgd", 0.01, 0.9, (0.9, 0.999))
    assert (cfg.schedule.name, cfg.schedule.gamma, cfg.schedule.power, cfg.schedule.warmup_iters) == (
        "multistep",
        0.1,
        0.9,
        0,
    )
    assert cfg.clip_grad_norm is None and cfg.max_iters_per_epoch is None and cfg.eval_every == 1


def test_yaml_round_trip(tmp_path):
    cfg = TaskCfg(
        model="pose_hrnet_w48",
        data=DataCfg(root=Path("/x/y"), image_size=(384, 288), classes=["a", "b"], sigma=None),
        train=TrainConfig(
            epochs=210,
            optim=OptimConfig(name="adam", lr=1e-3, betas=(0.8, 0.99)),
            schedule=ScheduleConfig(milestones=[170, 200]),
            clip_grad_norm=5.0,
        ),
        extra={"w": 1.5},
    )
    path = tmp_path / "sub" / "cfg.yaml"
    save_config(cfg, path)
    raw = yaml.safe_load(path.read_text())
    assert raw["train"]["optim"]["betas"] == [0.8, 0.99] and raw["data"]["root"] == "/x/y"
    back = load_config(TaskCfg, path)
    assert back == cfg
    assert isinstance(back.data.image_size, tuple) and isinstance(back.train.optim.betas, tuple)
    assert config_to_dict(back) == raw
    assert not list(path.parent.glob("*.tmp"))


def test_partial_yaml_and_nested_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 5\n  optim:\n    lr: 0.1\n")
    cfg = load_config(
        TaskCfg,
        path,
        [
            "train.optim.lr=5e-4",
            "train.schedule.milestones=[3, 4]",
            "train.clip_grad_norm=null",
            "data.image_size=[64,48]",
            "train.amp=bf16",
            "extra.alpha=2",
            "model=seg_hrnet_w18_small_v1",
        ],
    )
    assert cfg.train.epochs == 5
    assert cfg.train.optim.lr == pytest.approx(5e-4)  # YAML 1.1 reads 5e-4 as a string: converted
    assert cfg.train.optim.momentum == 0.9  # untouched defaults stay
    assert cfg.train.schedule.milestones == [3, 4]
    assert cfg.data.image_size == (64, 48) and cfg.extra == {"alpha": 2.0}
    assert cfg.train.amp == "bf16" and cfg.model == "seg_hrnet_w18_small_v1"
    assert load_config(TrainConfig, None, ["max_iters_per_epoch=3"]).max_iters_per_epoch == 3


def test_unknown_key_names_key_and_valid_keys(tmp_path):
    with pytest.raises(ValueError, match=r"'train\.optim\.lrr'.*'lr'.*'momentum'"):
        load_config(TaskCfg, None, ["train.optim.lrr=0.1"])
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ValueError, match=r"'train\.epoch'.*'epochs'") as err:
        load_config(TaskCfg, path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.epochs=abc", "train.epochs"),
        ("train.epochs=2.5", "train.epochs"),
        ("train.deterministic=1", "train.deterministic"),
        ("train.optim.lr=fast", "train.optim.lr"),
        ("train.optim.betas=[0.9]", "train.optim.betas"),
        ("data.classes=person", "data.classes"),
        ("train.optim=3", "train.optim"),
        ("train.amp=fp8", "amp"),
        ("train.optim.name=lamb", "name"),
        ("train.batch_size=0", "batch_size"),
        ("train.epochs.x=1", "train.epochs"),
    ],
)
def test_bad_values_raise_value_error_naming_the_key(override, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        load_config(TaskCfg, None, [override])


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(TaskCfg, tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="list.yaml"):
        load_config(TaskCfg, bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [unclosed\n")
    with pytest.raises(ValueError, match="broken.yaml"):
        load_config(TaskCfg, broken)
    with pytest.raises(ValueError, match="key.sub=value"):
        load_config(TaskCfg, None, ["train.epochs"])


def test_cli_arguments_feed_load_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 7\n")
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_run_options(parser)
    args = parser.parse_args(["--config", str(path), "--set", "train.batch_size=2", "--set", "train.seed=9"])
    cfg = load_config(TaskCfg, args.config, args.overrides)
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.seed) == (7, 2, 9)
