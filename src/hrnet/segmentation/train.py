"""Glue between a :class:`SegConfig` and the shared engine: model, datasets, loss, evaluation, training.

``evaluate_dataset`` is the one evaluation path (used by the trainer between epochs and by
``hrnet seg eval``): every rank runs :func:`~hrnet.segmentation.inference.predict_probs` on its shard
of the images at their full label resolution, and the confusion matrices are summed over ranks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hrnet.segmentation.config import SegConfig, SegDataConfig, SegTestConfig
from hrnet.segmentation.datasets import DATASETS, SegDataset, read_classes_yaml
from hrnet.segmentation.inference import predict_probs
from hrnet.segmentation.labels import (
    dataset_classes,
    default_palette,
    flip_permutation,
)
from hrnet.segmentation.loss import build_loss
from hrnet.segmentation.metrics import SegMetric
from hrnet.segmentation.transforms import EvalTransform, TrainTransform

log = logging.getLogger(__name__)


def class_info(data: SegDataConfig) -> tuple[list[str], list[tuple[int, int, int]], list[tuple[int, int]]]:
    """Class names, colours and left/right flip pairs of the configured dataset (without listing files)."""
    if data.dataset in ("cityscapes", "lip"):
        names, palette, pairs = dataset_classes(data.dataset)
    elif data.dataset == "pascal_context":
        names, palette, pairs = dataset_classes("pascal_context59" if data.num_classes == 59 else "pascal_context60")
    elif data.dataset == "folder":
        spec = read_classes_yaml(Path(data.root) / "classes.yaml")
        names = spec["names"]
        palette = [tuple(c) for c in spec["colors"]] if spec["colors"] else default_palette(len(names))
        pairs = []
    else:
        raise ValueError(f"data.dataset must be one of {sorted(DATASETS)}, got {data.dataset!r}")
    if len(names) != data.num_classes:
        raise ValueError(
            f"data.num_classes is {data.num_classes} but dataset {data.dataset!r} has {len(names)} classes"
        )
    return names, palette, pairs


def build_model(cfg: SegConfig) -> nn.Module:
    """The configured HRNetV2 segmentation network (ImageNet-initialised when ``model.pretrained`` is set)."""
    from hrnet.models.zoo import create_model

    overrides: dict[str, Any] = {}
    if cfg.model.stage_modules is not None:
        overrides["stage_modules"] = tuple(cfg.model.stage_modules)
    if cfg.model.stage_blocks is not None:
        overrides["stage_blocks"] = tuple(cfg.model.stage_blocks)
    return create_model(
        cfg.model.name, pretrained=cfg.model.pretrained or False, num_classes=cfg.data.num_classes, **overrides
    )


def build_dataset(
    data: SegDataConfig, split: str, train: bool, seed: int = 0, test_resize: list[int] | None = None
) -> SegDataset:
    """The dataset of ``split`` with the training augmentation (``train``) or the evaluation transform.

    ``test_resize`` (H, W) resizes evaluation images (not labels), as ``test.resize_to`` asks.
    """
    if data.dataset not in DATASETS:
        raise ValueError(f"data.dataset must be one of {sorted(DATASETS)}, got {data.dataset!r}")
    kwargs: dict[str, Any] = {"seed": seed, "repeat": data.repeat if train else 1}
    if data.dataset == "cityscapes":
        kwargs["label_suffix"] = data.label_suffix
    if data.dataset == "pascal_context":
        kwargs["num_classes"] = data.num_classes
    ds = DATASETS[data.dataset](data.root, split, **kwargs)
    if ds.num_classes != data.num_classes:
        raise ValueError(f"data.num_classes is {data.num_classes} but {data.root} has {ds.num_classes} classes")
    if train:
        ds.transform = TrainTransform(
            crop_size=data.crop_size, base_size=data.base_size, scale_range=data.scale_range, flip=data.flip,
            flip_pairs=ds.flip_pairs, resize_to=data.resize_to, ignore_index=ds.ignore_index, mean=data.mean,
            std=data.std,
        )
    else:
        ds.transform = EvalTransform(resize_to=test_resize, mean=data.mean, std=data.std)
    return ds


@torch.no_grad()
def evaluate_dataset(
    model: nn.Module, dataset: SegDataset, test: SegTestConfig, device: torch.device | str = "cpu",
    rank: int = 0, world_size: int = 1, flip_pairs=None,
) -> dict:
    """mIoU / pixel_acc / mean_acc / per_class of ``model`` on ``dataset`` (sharded by rank, all-reduced).

    ``dataset`` must carry an :class:`EvalTransform` (see :func:`build_dataset`); predictions are made at
    the label's full size.
    """
    model.eval()
    device = torch.device(device)
    pairs = dataset.flip_pairs if flip_pairs is None else flip_pairs
    perm = flip_permutation(dataset.num_classes, pairs) if pairs else None
    metric = SegMetric(dataset.num_classes, dataset.class_names, dataset.ignore_index)
    n = len(dataset) if test.max_images is None else min(len(dataset), test.max_images)
    for index in range(rank, n, world_size):
        sample = dataset[index]
        x: Tensor = sample["image"].unsqueeze(0).to(device)
        label: Tensor = sample["label"]
        probs = predict_probs(
            model, x, out_size=label.shape[-2:], mode=test.mode, crop_size=test.crop_size, stride=test.stride,
            scales=test.scales, flip=test.flip, flip_perm=perm,
        )
        metric.update(probs.argmax(1)[0].cpu(), label)
    metric.all_reduce(device if device.type == "cuda" else "cpu")
    return metric.compute()


def make_loss_fn(criterion: nn.Module) -> Callable[[nn.Module, Any, torch.device], tuple[Tensor, dict[str, float]]]:
    """The engine's ``loss_fn(model, batch, device)`` for segmentation batches."""

    def loss_fn(model: nn.Module, batch: dict, device: torch.device) -> tuple[Tensor, dict[str, float]]:
        images = batch["image"].to(device, non_blocking=True)
        labels = batch["label"].to(device, non_blocking=True)
        logits = model(images)
        loss = criterion.to(device)(logits.float(), labels)
        return loss, {"loss": float(loss.detach())}

    return loss_fn


def make_evaluate(cfg: SegConfig, dataset: SegDataset) -> Callable:
    """The engine's ``evaluate(model, dist)``: scalar scores only (``per_class`` stays in ``eval --json``)."""

    def evaluate(model: nn.Module, dist) -> dict[str, float]:
        scores = evaluate_dataset(model, dataset, cfg.test, dist.device, dist.rank, dist.world_size)
        return {k: scores[k] for k in ("mIoU", "pixel_acc", "mean_acc")}

    return evaluate


def train(cfg: SegConfig, out_dir: str | Path, resume: str | Path | None = None, device: str | None = None) -> dict:
    """Train (and evaluate each ``train.eval_every`` epochs) as configured; returns the last metrics."""
    from hrnet.engine.config import config_to_dict
    from hrnet.engine.distributed import init_distributed
    from hrnet.engine.trainer import Trainer

    dist = init_distributed(device)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg)
    train_set = build_dataset(cfg.data, cfg.data.train_split, train=True, seed=cfg.train.seed)
    val_set = (
        build_dataset(cfg.data, cfg.data.val_split, train=False, test_resize=cfg.test.resize_to)
        if cfg.train.eval_every else None
    )
    criterion = build_loss(
        cfg.loss.ohem, cfg.loss.ohem_thresh, cfg.loss.ohem_min_kept, cfg.loss.class_weights, train_set.ignore_index
    )
    if cfg.loss.class_weights is not None and len(cfg.loss.class_weights) != train_set.num_classes:
        raise ValueError(
            f"loss.class_weights has {len(cfg.loss.class_weights)} values for {train_set.num_classes} classes"
        )
    trainer = Trainer(
        model, train_set, cfg.train, out_dir, make_loss_fn(criterion),
        make_evaluate(cfg, val_set) if val_set is not None else None,
        best_metric="mIoU" if val_set is not None else None, higher_is_better=True, dist=dist,
        config_dict=config_to_dict(cfg),
    )
    return trainer.fit(resume=resume)
