"""Typed experiment configs: dataclasses <-> YAML, with ``a.b.c=value`` command-line overrides.

Configs are plain data. A task defines its own top-level dataclass (e.g. ``data``, ``model``, ``train``
fields) and reuses :class:`TrainConfig` for the training loop. :func:`load_config` reads a YAML file,
applies overrides and checks every key and type, so a typo fails loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from hrnet.atomic import write_text

T = TypeVar("T")

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("multistep", "poly", "cosine", "constant")
AMP_MODES = ("none", "bf16", "fp16")


def _check_choice(owner: str, name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{owner}.{name} must be one of {list(choices)}, got {value!r}")


@dataclass
class OptimConfig:
    """Optimizer settings (SGD with momentum for pose/seg/cls as in the paper, Adam(W) as options)."""

    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        _check_choice("optim", "name", self.name, OPTIMIZERS)
        if self.lr < 0 or self.weight_decay < 0:
            raise ValueError(f"optim.lr and optim.weight_decay must be >= 0, got {self.lr}, {self.weight_decay}")


@dataclass
class ScheduleConfig:
    """Learning-rate schedule; the LR is updated every optimizer step (iteration).

    ``milestones`` are epochs (multistep); ``power`` is the poly exponent; ``warmup_iters`` ramps the LR
    linearly from ``lr / warmup_iters`` to ``lr`` over the first iterations.
    """

    name: str = "multistep"
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    power: float = 0.9
    warmup_iters: int = 0

    def __post_init__(self) -> None:
        _check_choice("schedule", "name", self.name, SCHEDULES)
        if self.warmup_iters < 0:
            raise ValueError(f"schedule.warmup_iters must be >= 0, got {self.warmup_iters}")
        if sorted(self.milestones) != list(self.milestones):
            raise ValueError(f"schedule.milestones must be increasing, got {self.milestones}")


@dataclass
class TrainConfig:
    """Training-loop settings shared by every task. ``batch_size`` is per process."""

    epochs: int = 1
    batch_size: int = 32
    workers: int = 2
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    amp: str = "none"
    accum_steps: int = 1
    clip_grad_norm: float | None = None
    seed: int = 0
    deterministic: bool = False
    sync_bn: bool = False
    eval_every: int = 1
    log_every: int = 20
    ckpt_every_iters: int = 0
    tensorboard: bool = False
    max_iters_per_epoch: int | None = None
    on_eval_error: str = "continue"  # continue (log, record, train on) | stop (after the epoch's checkpoint)

    def __post_init__(self) -> None:
        _check_choice("train", "amp", self.amp, AMP_MODES)
        _check_choice("train", "on_eval_error", self.on_eval_error, ("continue", "stop"))
        for name in ("epochs", "batch_size", "accum_steps", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("workers", "eval_every", "ckpt_every_iters"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.max_iters_per_epoch is not None and self.max_iters_per_epoch < 1:
            raise ValueError(f"train.max_iters_per_epoch must be >= 1 or null, got {self.max_iters_per_epoch}")
        if self.clip_grad_norm is not None and self.clip_grad_norm <= 0:
            raise ValueError(f"train.clip_grad_norm must be > 0 or null, got {self.clip_grad_norm}")


# ----------------------------------------------------------------------------------------------------
# dict -> dataclass with type checking


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` checked (and minimally converted) against the annotation ``tp``; ValueError if wrong."""
    if tp is Any or tp is object:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"config key {key!r}: expected a mapping for {tp.__name__}, got {value!r}")
        return _build(tp, value, key)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(f"config key {key!r}: {value!r} does not match {_type_name(tp)} ({'; '.join(errors)})")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"config key {key!r}: must be one of {list(args)}, got {value!r}")
        return value
    if origin in (list, Sequence) or tp is list:
        if not isinstance(value, list | tuple):
            raise ValueError(f"config key {key!r}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is tuple or tp is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"config key {key!r}: expected a list, got {value!r}")
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            item = args[0] if args else Any
            return tuple(_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"config key {key!r}: expected {len(args)} values, got {len(value)}: {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"config key {key!r}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {_coerce(k, kt, f"{key}.{k}"): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config key {key!r}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config key {key!r}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "5e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"config key {key!r}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"config key {key!r}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str | Path):
            raise ValueError(f"config key {key!r}: expected a path string, got {value!r}")
        return Path(value)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ValueError(f"config key {key!r}: expected {tp.__name__}, got {value!r}")
    return value


def _build(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise ValueError."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in fields:
            raise ValueError(f"unknown config key {key!r}; valid keys here: {sorted(fields)}")
        kwargs[name] = _coerce(value, hints[name], key)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field without default is missing
        raise ValueError(f"config section {prefix or cls.__name__!r}: {exc}") from exc


def _apply_override(data: dict, override: str) -> None:
    """Set ``a.b.c=value`` in the nested dict ``data``; the value is parsed with ``yaml.safe_load``."""
    if "=" not in override:
        raise ValueError(f"override {override!r} must look like key.sub=value")
    dotted, raw = override.split("=", 1)
    parts = [p for p in dotted.strip().split(".")]
    if not all(parts):
        raise ValueError(f"override {override!r} has an empty key part")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ValueError(f"override {override!r}: value is not valid YAML: {exc}") from exc
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ValueError(f"override {override!r}: {'.'.join(parts[: i + 1])!r} is not a section")
        node = child
    node[parts[-1]] = value


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Read YAML ``path`` (optional) into dataclass ``cls``, then apply ``overrides`` ("train.optim.lr=5e-4").

    Missing keys keep their defaults; unknown keys or wrong types raise ValueError naming the key. When the
    built object has a ``resolve_paths(config_dir)`` method it is called with the YAML file's folder.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"config file {path} is not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {path}: top level must be a mapping, got {type(loaded).__name__}")
        data = loaded
    for override in overrides:
        _apply_override(data, override)
    where = f" (from {path})" if path is not None else ""
    try:
        cfg = _build(cls, data)
    except ValueError as exc:
        raise ValueError(f"{exc}{where}") from exc
    # a config may hold file paths meant relative to the YAML file itself (e.g. pose's data.keypoint_set)
    resolve = getattr(cfg, "resolve_paths", None)
    if path is not None and callable(resolve):
        resolve(path.parent)
    return cfg


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def config_to_dict(cfg: Any) -> dict:
    """Plain nested dict of a config dataclass (tuples -> lists, paths -> str), ready for YAML / checkpoints."""
    out = _plain(cfg)
    if not isinstance(out, dict):
        raise TypeError(f"config_to_dict expects a dataclass instance or mapping, got {type(cfg).__name__}")
    return out


def save_config(cfg: Any, path: str | Path) -> None:
    """Write a config (dataclass or dict) as YAML, atomically (temp file + os.replace)."""
    write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
