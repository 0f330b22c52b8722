"""Segmentation losses: pixel cross-entropy with ignore index and class weights, and OHEM.

Both take logits at any resolution and upsample them bilinearly (align_corners=False) to the label
size first, as the paper trains on full-resolution labels. OHEM (online hard example mining) follows the
official HRNet rule: rank the valid pixels by the predicted probability of their true class and keep
those below ``max(thresh, p_k)``, where ``p_k`` is the ``(min_kept + 1)``-th smallest probability; so at
least ``min_kept`` pixels are kept (all when there are fewer), and every pixel whose true class gets less
than ``thresh`` is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hrnet.segmentation.labels import IGNORE_INDEX


def upsample_logits(logits: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear upsampling (align_corners=False) of (N, C, h, w) logits to ``size`` = (H, W)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


class SegCrossEntropy(nn.Module):
    """Mean pixel cross-entropy over non-ignored pixels, optionally class-weighted."""

    def __init__(self, class_weights: Sequence[float] | None = None, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.ignore_index = ignore_index
        self.register_buffer(
            "weight", torch.tensor(class_weights, dtype=torch.float32) if class_weights else None, persistent=False
        )

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logits = upsample_logits(logits.float(), target.shape[-2:])
        return F.cross_entropy(logits, target, weight=self.weight, ignore_index=self.ignore_index)


class OhemCrossEntropy(SegCrossEntropy):
    """Cross-entropy averaged over the hard pixels only (see the module docstring for the rule)."""

    def __init__(
        self,
        thresh: float = 0.9,
        min_kept: int = 131072,
        class_weights: Sequence[float] | None = None,
        ignore_index: int = IGNORE_INDEX,
    ):
        super().__init__(class_weights, ignore_index)
        self.thresh = float(thresh)
        self.min_kept = max(1, int(min_kept))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logits = upsample_logits(logits.float(), target.shape[-2:])
        pixel_loss = F.cross_entropy(
            logits, target, weight=self.weight, ignore_index=self.ignore_index, reduction="none"
        ).reshape(-1)
        valid = target.reshape(-1) != self.ignore_index
        if not valid.any():
            return logits.sum() * 0.0
        with torch.no_grad():
            prob = logits.softmax(dim=1)
            safe_target = target.clone()
            safe_target[target == self.ignore_index] = 0
            true_prob = prob.gather(1, safe_target.unsqueeze(1)).reshape(-1)[valid]
            if self.min_kept >= true_prob.numel():
                hard = torch.ones_like(true_prob, dtype=torch.bool)
            else:
                # the (min_kept+1)-th smallest probability: keeping p below it keeps min_kept pixels
                kth = true_prob.kthvalue(self.min_kept + 1).values
                hard = true_prob < torch.maximum(kth, true_prob.new_tensor(self.thresh))
                if not hard.any():  # all probabilities tie: keep them all rather than none
                    hard = torch.ones_like(hard)
        return pixel_loss[valid][hard].mean()


def build_loss(
    ohem: bool = False,
    thresh: float = 0.9,
    min_kept: int = 131072,
    class_weights: Sequence[float] | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> nn.Module:
    """The configured criterion: :class:`OhemCrossEntropy` when ``ohem`` else :class:`SegCrossEntropy`."""
    if ohem:
        return OhemCrossEntropy(thresh, min_kept, class_weights, ignore_index)
    return SegCrossEntropy(class_weights, ignore_index)
