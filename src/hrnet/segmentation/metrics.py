"""Confusion-matrix metrics for semantic segmentation: mIoU, per-class IoU, pixel and mean accuracy.

The confusion matrix ``cm[t, p]`` counts pixels of true class ``t`` predicted as ``p``; ignored pixels
are left out. Under DDP each rank counts its shard and the matrices are summed with the engine's
``all_reduce_`` before the scores are computed, so every rank reports the same numbers. mIoU averages
over the classes whose union is non-empty (present in the ground truth or the prediction); mean accuracy
over the classes present in the ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from hrnet.engine.distributed import all_reduce_
from hrnet.segmentation.labels import IGNORE_INDEX


def confusion_matrix(
    pred: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """(C, C) int64 counts of ``target`` (rows) against ``pred`` (columns) over non-ignored pixels."""
    pred = torch.as_tensor(pred).reshape(-1).long()
    target = torch.as_tensor(target).reshape(-1).long()
    if pred.shape != target.shape:
        raise ValueError(f"prediction has {pred.numel()} pixels but the label has {target.numel()}")
    keep = target != ignore_index
    target, pred = target[keep], pred[keep]
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise ValueError(f"label values outside 0..{num_classes - 1} (and not {ignore_index})")
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= num_classes):
        raise ValueError(f"predicted values outside 0..{num_classes - 1}")
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).cpu()


def scores_from_confusion(cm: torch.Tensor | np.ndarray, class_names: Sequence[str] | None = None) -> dict:
    """Scores from a confusion matrix: ``mIoU``, ``pixel_acc``, ``mean_acc``, ``per_class`` (name -> IoU).

    Classes with an empty union get ``None`` in ``per_class`` and are left out of the mean.
    """
    cm = np.asarray(torch.as_tensor(cm).cpu(), dtype=np.float64)
    tp = np.diag(cm)
    gt = cm.sum(axis=1)
    union = gt + cm.sum(axis=0) - tp
    present = union > 0
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=present)
    acc = np.divide(tp, gt, out=np.zeros_like(tp), where=gt > 0)
    total = cm.sum()
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(tp))]
    if len(names) != len(tp):
        raise ValueError(f"{len(names)} class names for a {len(tp)}-class confusion matrix")
    return {
        "mIoU": float(iou[present].mean()) if present.any() else 0.0,
        "pixel_acc": float(tp.sum() / total) if total > 0 else 0.0,
        "mean_acc": float(acc[gt > 0].mean()) if (gt > 0).any() else 0.0,
        "per_class": {n: (float(v) if p else None) for n, v, p in zip(names, iou, present)},
    }


class SegMetric:
    """Accumulates a confusion matrix over batches; ``all_reduce()`` sums it across DDP ranks."""

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, ignore_index: int = IGNORE_INDEX):
        self.num_classes = num_classes
        self.class_names = class_names
        self.ignore_index = ignore_index
        self.cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred, target) -> None:
        """Add the pixels of one prediction / label pair (any matching shapes)."""
        self.cm += confusion_matrix(pred, target, self.num_classes, self.ignore_index)

    def all_reduce(self, device: torch.device | str = "cpu") -> None:
        """Sum the matrix over processes (no-op without an initialised process group)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            cm = self.cm.to(device)
            all_reduce_(cm)
            self.cm = cm.cpu()

    def compute(self) -> dict:
        """The scores of :func:`scores_from_confusion` on the accumulated matrix."""
        return scores_from_confusion(self.cm, self.class_names)
