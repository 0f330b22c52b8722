"""Optimizer and per-iteration learning-rate schedule built from :mod:`hrnet.engine.config`.

The schedule is a function of the optimizer-step index, so it is identical whatever the accumulation,
world size or resume point: multistep drops at epoch milestones, poly ``(1 - t/T)^power`` (HRNet
segmentation), cosine, constant; an optional linear warmup multiplies any of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from hrnet.engine.config import OptimConfig, ScheduleConfig


def build_optimizer(params: nn.Module | Iterable[Any], cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD / Adam / AdamW over a module's trainable parameters or explicit parameter groups."""
    if isinstance(params, nn.Module):
        params = [p for p in params.parameters() if p.requires_grad]
    params = list(params)
    if not params:
        raise ValueError("build_optimizer: no trainable parameters")
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.name!r}; expected sgd, adam or adamw")


def lr_factor(cfg: ScheduleConfig, iteration: int, iters_per_epoch: int, total_iters: int) -> float:
    """Multiplier of the base LR at optimizer step ``iteration`` (0-based)."""
    if cfg.name == "multistep":
        epoch = iteration // max(iters_per_epoch, 1)
        factor = cfg.gamma ** sum(1 for m in cfg.milestones if epoch >= m)
    elif cfg.name == "poly":
        factor = max(0.0, 1.0 - iteration / max(total_iters, 1)) ** cfg.power
    elif cfg.name == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * min(iteration, total_iters) / max(total_iters, 1)))
    elif cfg.name == "constant":
        factor = 1.0
    else:
        raise ValueError(f"unknown schedule {cfg.name!r}")
    if cfg.warmup_iters > 0 and iteration < cfg.warmup_iters:
        factor *= (iteration + 1) / cfg.warmup_iters
    return factor


class IterationScheduler:
    """Sets each param group's LR to ``base_lr * lr_factor(...)`` for the current optimizer step.

    ``step()`` is called after every optimizer step. The state is just the step index (and the base LRs),
    so it checkpoints with ``weights_only=True``.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, iters_per_epoch: int, epochs: int
    ) -> None:
        self.optimizer = optimizer
        self.cfg = cfg
        self.iters_per_epoch = max(int(iters_per_epoch), 1)
        self.total_iters = self.iters_per_epoch * max(int(epochs), 1)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [float(g["initial_lr"]) for g in optimizer.param_groups]
        self.last_iter = 0
        self._apply()

    def factor(self, iteration: int | None = None) -> float:
        """LR multiplier at ``iteration`` (default: the current step)."""
        it = self.last_iter if iteration is None else iteration
        return lr_factor(self.cfg, it, self.iters_per_epoch, self.total_iters)

    def _apply(self) -> None:
        f = self.factor()
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f

    def step(self) -> None:
        """Advance one optimizer step and set the LR for the next one."""
        self.last_iter += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """Current LR of every param group (the LR the next optimizer step uses)."""
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"last_iter": self.last_iter, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.last_iter = int(state["last_iter"])
        self.base_lrs = [float(v) for v in state["base_lrs"]]
        self._apply()


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, iters_per_epoch: int, epochs: int
) -> IterationScheduler:
    """Per-iteration LR schedule over ``epochs * iters_per_epoch`` optimizer steps."""
    return IterationScheduler(optimizer, cfg, iters_per_epoch, epochs)
