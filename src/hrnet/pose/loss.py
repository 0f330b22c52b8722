"""JointsMSE: the heatmap regression loss of HRNet, with per-keypoint target weights.

Loss = 0.5 * mean over keypoints, pixels and samples of (w_k * (pred - target))^2; w_k is 0 for
keypoints that are unlabelled or fall off the heatmap, so they do not pull predictions to zero.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class JointsMSELoss(nn.Module):
    """0.5 x weighted mean squared error between predicted and target heatmaps (N, K, h, w)."""

    def __init__(self, use_target_weight: bool = True) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight

    def forward(self, pred: Tensor, target: Tensor, target_weight: Tensor | None = None) -> Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"heatmap shapes differ: prediction {tuple(pred.shape)} vs target {tuple(target.shape)}")
        pred, target = pred.float(), target.float()
        if self.use_target_weight and target_weight is not None:
            w = target_weight.float().reshape(pred.shape[0], pred.shape[1], 1, 1)
            pred, target = pred * w, target * w
        return 0.5 * torch.mean((pred - target) ** 2)
