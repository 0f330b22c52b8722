"""Optimizers and the per-iteration LR schedule against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from hrnet.engine import OptimConfig, ScheduleConfig, build_optimizer, build_scheduler


def _lrs(cfg: ScheduleConfig, iters_per_epoch: int, epochs: int, lr: float = 1.0) -> list[float]:
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], OptimConfig(lr=lr))
    sched = build_scheduler(opt, cfg, iters_per_epoch, epochs)
    out = []
    for _ in range(iters_per_epoch * epochs):
        out.append(opt.param_groups[0]["lr"])
        sched.step()
    return out


def test_multistep_drops_at_epoch_milestones():
    got = _lrs(ScheduleConfig(name="multistep", milestones=[1, 2], gamma=0.1), 3, 3)
    assert got == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])


def test_poly_cosine_constant_and_warmup():
    poly = _lrs(ScheduleConfig(name="poly", power=0.9), 5, 2, lr=0.01)
    assert poly[0] == pytest.approx(0.01) and poly[5] == pytest.approx(0.01 * 0.5**0.9)
    assert poly[9] == pytest.approx(0.01 * 0.1**0.9)
    cos = _lrs(ScheduleConfig(name="cosine"), 4, 2)
    assert cos[4] == pytest.approx(0.5) and cos[2] == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert _lrs(ScheduleConfig(name="constant"), 3, 1) == [1, 1, 1]
    warm = _lrs(ScheduleConfig(name="constant", warmup_iters=4), 3, 2)
    assert warm == pytest.approx([0.25, 0.5, 0.75, 1, 1, 1])


def test_param_groups_keep_their_own_base_lr_and_state_round_trips():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([{"params": [a]}, {"params": [b], "lr": 0.1}], OptimConfig(name="sgd", lr=1.0))
    cfg = ScheduleConfig(name="multistep", milestones=[1], gamma=0.5)
    sched = build_scheduler(opt, cfg, 2, 2)
    for _ in range(2):
        sched.step()
    assert sched.get_last_lr() == pytest.approx([0.5, 0.05])
    opt2 = build_optimizer([{"params": [a]}, {"params": [b], "lr": 0.1}], OptimConfig(name="sgd", lr=1.0))
    sched2 = build_scheduler(opt2, cfg, 2, 2)
    sched2.load_state_dict(sched.state_dict())
    assert sched2.get_last_lr() == pytest.approx([0.5, 0.05])


def test_optimizer_kinds():
    p = [torch.nn.Parameter(torch.zeros(2))]
    sgd = build_optimizer(p, OptimConfig(name="sgd", lr=0.1, momentum=0.8, nesterov=True, weight_decay=1e-4))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.8
    adam = build_optimizer(p, OptimConfig(name="adam", betas=(0.5, 0.9)))
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["betas"] == (0.5, 0.9)
    assert isinstance(build_optimizer(p, OptimConfig(name="adamw")), torch.optim.AdamW)
    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        build_optimizer(frozen, OptimConfig())
