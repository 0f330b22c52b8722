"""Tiny models, datasets, losses and evaluators for the engine tests (importable by spawned workers)."""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from hrnet.engine import OptimConfig, ScheduleConfig, TrainConfig, Trainer, cleanup, init_distributed
from hrnet.engine.distributed import DistInfo, all_reduce_

W_TRUE = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])


class ToyRegression(Dataset):
    """y = x @ W_TRUE (+ noise); ``augment`` adds noise drawn from the *global* torch / numpy / random RNGs."""

    def __init__(self, n: int = 24, seed: int = 0, augment: bool = True) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ W_TRUE + 0.05 * torch.randn(n, 1, generator=g)
        self.augment = augment
        self.epochs_seen: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs_seen.append(epoch)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[i]
        if self.augment:
            jitter = 0.05 * torch.randn(4) + float(np.random.uniform(-0.01, 0.01)) + random.uniform(-0.01, 0.01)
            x = x + jitter
        return x, self.y[i]


def make_mlp(dropout: float = 0.0, bn: bool = False, seed: int = 123) -> nn.Module:
    """4 -> 16 -> 1 MLP; optional dropout (uses the global RNG) and BatchNorm."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(4, 16)]
    if bn:
        layers.append(nn.BatchNorm1d(16))
    layers += [nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 1)]
    return nn.Sequential(*layers)


def mse_loss(model: nn.Module, batch, device: torch.device):
    x, y = (t.to(device) for t in batch)
    pred = model(x)
    loss = nn.functional.mse_loss(pred.float(), y)
    return loss, {"mse": float(loss.detach())}


def make_evaluate(n: int = 16, seed: int = 7):
    """Evaluator on a fixed validation set, sharded by rank and reduced with ``all_reduce_``."""
    val = ToyRegression(n, seed=seed, augment=False)

    def evaluate(model: nn.Module, dist: DistInfo) -> dict[str, float]:
        idx = list(range(dist.rank, len(val), dist.world_size))
        x, y = val.x[idx].to(dist.device), val.y[idx].to(dist.device)
        sse = ((model(x).float() - y) ** 2).sum().double()
        acc = torch.stack([sse, torch.tensor(float(len(idx)), dtype=torch.float64)])
        all_reduce_(acc, "sum")
        return {"neg_mse": -float(acc[0] / acc[1]), "mse": float(acc[0] / acc[1])}

    return evaluate


class CrashAt:
    """Wraps a loss function and raises after ``n`` calls: a training run killed mid-way."""

    def __init__(self, loss_fn, n: int) -> None:
        self.loss_fn, self.n, self.calls = loss_fn, n, 0

    def __call__(self, model, batch, device):
        if self.calls == self.n:
            raise RuntimeError("simulated crash")
        self.calls += 1
        return self.loss_fn(model, batch, device)


def ddp_cfg(batch_size: int, bn: bool):
    """The training settings shared by the 1-process and the 2-process runs of the DDP test."""
    return TrainConfig(
        epochs=2,
        batch_size=batch_size,
        workers=0,
        seed=3,
        sync_bn=bn,
        log_every=1,
        optim=OptimConfig(name="sgd", lr=0.02, momentum=0.9),
        schedule=ScheduleConfig(name="poly", warmup_iters=2),
    )


def run_toy_training(out_dir: str, dist, batch_size: int, bn: bool) -> tuple[dict, dict]:
    """Train the toy MLP (optionally with BatchNorm) and return (state_dict, last eval metrics)."""
    trainer = Trainer(
        make_mlp(bn=bn),
        ToyRegression(32),
        ddp_cfg(batch_size, bn),
        out_dir,
        mse_loss,
        make_evaluate(),
        best_metric="neg_mse",
        dist=dist,
    )
    metrics = trainer.fit()
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}, metrics


def ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    """torch.multiprocessing.spawn target: join a gloo group through the torchrun-style environment."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    dist = init_distributed("cpu")
    try:
        state, metrics = run_toy_training(out_dir, dist, 4, bn=False)
        torch.save({"state": state, "metrics": metrics}, f"{out_dir}/rank{rank}.pt")
    finally:
        cleanup()
