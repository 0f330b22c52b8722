"""Top-k accuracy: counts per batch, summed over batches and ranks, divided once at the end.

Summing integer counts (not averaging per-batch accuracies) keeps the result exact for uneven last
batches and uneven shards across ranks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from hrnet.engine.distributed import all_reduce_


def topk_correct(logits: Tensor, targets: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, int]:
    """Number of samples whose target is among the ``k`` highest logits, for each ``k`` in ``ks``.

    ``k`` larger than the number of classes counts every sample as correct (as torchvision's reference
    does implicitly by clamping).
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, num_classes), got shape {tuple(logits.shape)}")
    if targets.shape != (logits.shape[0],):
        raise ValueError(f"targets must be (N,) = ({logits.shape[0]},), got shape {tuple(targets.shape)}")
    if logits.shape[0] == 0:
        return {k: 0 for k in ks}
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices  # (N, kmax), best first
    hit = top.eq(targets.to(top.device).view(-1, 1))
    return {k: int(hit[:, : min(k, kmax)].any(dim=1).sum()) for k in ks}


class TopKMeter:
    """Accumulates top-k counts; :meth:`all_reduce` sums them over ranks before :meth:`compute`.

    ``skipped`` counts samples that could not be scored (unreadable images); they are reported, not scored.
    """

    def __init__(self, ks: Sequence[int] = (1, 5)) -> None:
        self.ks = tuple(ks)
        self.correct = {k: 0 for k in self.ks}
        self.count = 0
        self.skipped = 0

    def update(self, logits: Tensor, targets: Tensor) -> None:
        """Add one batch of logits (N, C) and integer targets (N,)."""
        for k, c in topk_correct(logits, targets, self.ks).items():
            self.correct[k] += c
        self.count += int(targets.shape[0])

    def all_reduce(self, device: torch.device | str = "cpu") -> None:
        """Sum the counts over all ranks (no-op without an initialised process group).

        ``device`` must suit the backend: the CPU for gloo, the rank's GPU for nccl.
        """
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return

        values = [self.count, self.skipped] + [self.correct[k] for k in self.ks]
        t = torch.tensor(values, dtype=torch.float64, device=device)
        all_reduce_(t, op="sum")
        self.count, self.skipped = int(t[0].item()), int(t[1].item())
        self.correct = {k: int(v.item()) for k, v in zip(self.ks, t[2:])}

    def compute(self) -> dict[str, float]:
        """``top{k}`` as fractions in [0, 1], ``count`` and ``skipped``; zero scored samples raise."""
        if self.count == 0:
            raise ValueError(f"top-k accuracy of zero samples ({self.skipped} unreadable): nothing was scored")
        out = {f"top{k}": self.correct[k] / self.count for k in self.ks}
        out["count"] = float(self.count)
        out["skipped"] = float(self.skipped)
        return out
