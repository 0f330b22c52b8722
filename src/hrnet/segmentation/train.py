"""Glue between a :class:`SegConfig` and the shared engine: model, datasets, loss, evaluation, training.

``evaluate_dataset`` is the one evaluation path (used by the trainer between epochs and by
``hrnet seg eval``): every rank runs :func:`~hrnet.segmentation.inference.segment_image` (the function
``Segmenter`` uses) on the raw images of its shard at their full label resolution, and the confusion
matrices are summed over ranks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hrnet.engine.distributed import DistInfo, init_distributed
from hrnet.engine.launch import RunContext, TrainSetup, run_training
from hrnet.labels import flip_permutation
from hrnet.models.weights import load_weights
from hrnet.segmentation.check import check_seg_data
from hrnet.segmentation.config import SegConfig, SegDataConfig, SegTestConfig
from hrnet.segmentation.datasets import DATASETS, SegDataset, read_classes_yaml
from hrnet.segmentation.inference import segment_image
from hrnet.segmentation.labels import dataset_classes, default_palette
from hrnet.segmentation.loss import build_loss
from hrnet.segmentation.metrics import SegMetric
from hrnet.segmentation.model import build_model, make_card
from hrnet.segmentation.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform, TrainTransform

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
            crop_size=data.crop_size,
            base_size=data.base_size,
            scale_range=data.scale_range,
            flip=data.flip,
            flip_pairs=ds.flip_pairs,
            resize_to=data.resize_to,
            ignore_index=ds.ignore_index,
            mean=data.mean,
            std=data.std,
        )
    else:
        ds.transform = EvalTransform(resize_to=test_resize, mean=data.mean, std=data.std)
    return ds


@torch.no_grad()
def evaluate_dataset(
    model: nn.Module,
    dataset: SegDataset,
    test: SegTestConfig,
    device: torch.device | str = "cpu",
    rank: int = 0,
    world_size: int = 1,
    flip_pairs=None,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> dict:
    """mIoU / pixel_acc / mean_acc / per_class of ``model`` on ``dataset`` (sharded by rank, all-reduced).

    Every image goes through :func:`~hrnet.segmentation.inference.segment_image` on the raw RGB image
    (``dataset.load``; the dataset's transform is not used, ``test.resize_to`` does the resizing), with its
    scores made at the label's full size: the labels scored here are the labels ``Segmenter`` returns.
    ``mean``/``std`` default to those of the dataset's :class:`EvalTransform` (else ImageNet's).
    """
    model.eval()
    device = torch.device(device)
    pairs = dataset.flip_pairs if flip_pairs is None else flip_pairs
    perm = flip_permutation(dataset.num_classes, pairs) if pairs else None
    mean = tuple(mean if mean is not None else getattr(dataset.transform, "mean", IMAGENET_MEAN))
    std = tuple(std if std is not None else getattr(dataset.transform, "std", IMAGENET_STD))
    metric = SegMetric(dataset.num_classes, dataset.class_names, dataset.ignore_index)
    n = len(dataset) if test.max_images is None else min(len(dataset), test.max_images)
    for index in range(rank, n, world_size):
        image, label = dataset.load(index)
        scores = segment_image(
            model, image, test, mean=mean, std=std, flip_perm=perm, out_size=label.shape[:2], device=device
        )
        metric.update(scores.argmax(1)[0].cpu(), torch.from_numpy(label))
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
        scores = evaluate_dataset(
            model, dataset, cfg.test, dist.device, dist.rank, dist.world_size, mean=cfg.data.mean, std=cfg.data.std
        )
        return {k: scores[k] for k in ("mIoU", "pixel_acc", "mean_acc")}

    return evaluate


def train(
    cfg: SegConfig,
    out: str | Path | None,
    resume: str | Path | None = None,
    device: str | None = None,
    *,
    exist_ok: bool = False,
    dist: DistInfo | None = None,
) -> dict[str, float]:
    """Train (and evaluate each ``train.eval_every`` epochs) as configured; returns the last metrics. The
    run folder follows the engine's rule (:mod:`hrnet.engine.rundir`); ``cfg`` is not changed."""

    def build(ctx: RunContext) -> TrainSetup:
        c = ctx.cfg
        model = build_model(c)
        train_set = build_dataset(c.data, c.data.train_split, train=True, seed=c.train.seed)
        val_set = (
            build_dataset(c.data, c.data.val_split, train=False, test_resize=c.test.resize_to)
            if c.train.eval_every
            else None
        )
        criterion = build_loss(
            c.loss.ohem, c.loss.ohem_thresh, c.loss.ohem_min_kept, c.loss.class_weights, train_set.ignore_index
        )
        if c.loss.class_weights is not None and len(c.loss.class_weights) != train_set.num_classes:
            raise ValueError(
                f"loss.class_weights has {len(c.loss.class_weights)} values for {train_set.num_classes} classes"
            )
        names, palette, pairs = class_info(c.data)
        return TrainSetup(
            model=model,
            train_set=train_set,
            loss_fn=make_loss_fn(criterion),
            evaluate=make_evaluate(c, val_set) if val_set is not None else None,
            best_metric="mIoU" if val_set is not None else None,
            card=make_card(c, names=names, palette=palette, flip_pairs=pairs),
        )

    return run_training(
        cfg,
        out,
        build,
        task="seg",
        check=lambda c: check_seg_data(c, level="quick"),
        logger=log,
        resume=resume,
        exist_ok=exist_ok,
        device=device,
        dist=dist,
    )


def evaluate(
    cfg: SegConfig,
    weights: str | Path | None,
    device: str | None = None,
    *,
    dist: DistInfo | None = None,
    split: str | None = None,
) -> dict:
    """Score ``weights`` on ``split`` (default ``data.val_split``) of ``cfg`` with its test protocol.

    Loading is strict: weights of another class count are an error naming both counts.
    """
    dist = dist or init_distributed(device)
    model = build_model(cfg, pretrained=False)
    if weights is not None:
        load_weights(model, weights, on_head_mismatch="error")
    model.to(dist.device)
    dataset = build_dataset(cfg.data, split or cfg.data.val_split, train=False, test_resize=cfg.test.resize_to)
    with torch.inference_mode():
        return evaluate_dataset(model, dataset, cfg.test, dist.device, dist.rank, dist.world_size)
