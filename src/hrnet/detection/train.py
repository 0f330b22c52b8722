"""Detection experiments as Python functions: datasets, loss and COCO evaluation handed to the shared engine.

``train(cfg, out)`` and ``evaluate(cfg, weights)`` are what ``hrnet det train`` / ``eval`` run. The
detectors compute their own losses (torchvision's contract: ``model(images, targets) -> {name: loss}``), so
the loss function just sums them and logs each. Batches come from :class:`~hrnet.detection.datasets.GroupedBatches`
(images of similar aspect ratio together); the engine loads one ready batch per step, so ``train.batch_size``
stays the number of images per process and step. Relative data paths are taken under ``data.root``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hrnet.atomic import write_json
from hrnet.detection.check import check_det_data
from hrnet.detection.config import DetConfig
from hrnet.detection.datasets import CocoDetection, GroupedBatches, unwrap_batch
from hrnet.detection.evaluation import evaluate_model
from hrnet.detection.model import MASK_FRAMEWORKS, build_model, load_detection_weights, make_card, parse_name
from hrnet.engine.distributed import DistInfo, init_distributed
from hrnet.engine.launch import RunContext, TrainSetup, run_training
from hrnet.paths import under_root

log = logging.getLogger("hrnet.detection")
BEST_METRIC = "bbox_AP"


def build_dataset(cfg: DetConfig, train: bool) -> CocoDetection:
    """The training or validation set of ``cfg``, with masks / keypoints when the framework learns them."""
    d = cfg.data
    framework, _ = parse_name(cfg.model.name)
    ann = under_root(d.root, d.train_ann if train else d.val_ann)
    images = under_root(d.root, d.train_images if train else d.val_images)
    return CocoDetection(
        ann,
        images,
        train=train,
        masks=framework in MASK_FRAMEWORKS,
        keypoints=framework == "keypoint_rcnn",
        flip_prob=d.flip_prob,
        skip_empty=d.skip_empty if train else False,
    )


def loss_fn(model: nn.Module, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, dict[str, float]]:
    """The sum of the detector's losses; each one is logged."""
    images = [im.to(device, non_blocking=True) for im in batch["images"]]
    targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in batch["targets"]]
    losses = model(images, targets)
    total = sum(v.float() for v in losses.values())
    return total, {k: float(v.detach()) for k, v in losses.items()}


def param_groups(model: nn.Module, cfg: DetConfig) -> list[dict[str, Any]] | None:
    """Bias parameters at ``bias_lr_mult`` x the LR and optionally without weight decay (FCOS recipe);
    None (one group) when the recipe has no such tweak."""
    g = cfg.optim_groups
    if g.bias_lr_mult == 1.0 and g.bias_decay:
        return None
    opt = cfg.train.optim
    biases = [p for n, p in model.named_parameters() if p.requires_grad and n.endswith(".bias")]
    others = [p for n, p in model.named_parameters() if p.requires_grad and not n.endswith(".bias")]
    decay = opt.weight_decay if g.bias_decay else 0.0
    return [{"params": others}, {"params": biases, "lr": opt.lr * g.bias_lr_mult, "weight_decay": decay}]


def make_evaluator(
    cfg: DetConfig, dataset: CocoDetection, results_out: list | None = None, per_class: bool | None = None
):
    """``evaluate(model, dist) -> metrics`` for the engine: shard, predict, gather, COCOeval on rank 0, share."""
    t = cfg.test

    def evaluate(model: nn.Module, dist: DistInfo) -> dict[str, float]:
        return evaluate_model(
            model,
            dataset,
            dist,
            batch_size=t.batch_size,
            workers=t.workers,
            per_class=t.per_class if per_class is None else per_class,
            results_out=results_out,
        )

    return evaluate


def train(
    cfg: DetConfig,
    out: str | Path | None,
    resume: str | Path | None = None,
    device: str | None = None,
    *,
    exist_ok: bool = False,
    dist: DistInfo | None = None,
) -> dict[str, float]:
    """Train ``cfg`` into a run folder (checkpoints, metrics.jsonl, carded model_best.safetensors; the
    engine's rule, :mod:`hrnet.engine.rundir`); returns the last evaluation metrics (``bbox_AP`` ... and
    ``segm_AP`` ... for mask frameworks). ``cfg`` is not changed."""

    def build(ctx: RunContext) -> TrainSetup:
        c = ctx.cfg
        train_set = build_dataset(c, train=True)
        val_set = build_dataset(c, train=False)
        if train_set.category_ids != val_set.category_ids:
            raise ValueError(
                f"{train_set.ann_file} and {val_set.ann_file} have different categories; "
                "a detector's classes must be the same in training and validation"
            )
        model = build_model(c, num_classes=train_set.num_classes, keypoint_names=train_set.keypoint_names)
        return TrainSetup(
            model=model,
            train_set=GroupedBatches(train_set, c.train.batch_size, c.data.aspect_ratio_group_factor, c.train.seed),
            loss_fn=loss_fn,
            evaluate=make_evaluator(c, val_set),
            best_metric=BEST_METRIC,
            card=make_card(
                c,
                class_names=train_set.class_names,
                category_ids=train_set.category_ids,
                keypoint_names=train_set.keypoint_names,
            ),
            collate_fn=unwrap_batch,
            param_groups=param_groups(model, c),
            train_cfg=dataclasses.replace(c.train, batch_size=1),  # one item = one ready batch of batch_size images
        )

    return run_training(
        cfg,
        out,
        build,
        task="det",
        check=lambda c: check_det_data(c, level="quick"),
        logger=log,
        resume=resume,
        exist_ok=exist_ok,
        device=device,
        dist=dist,
    )


def evaluate(
    cfg: DetConfig,
    weights: str | Path | None,
    device: str | None = None,
    *,
    dist: DistInfo | None = None,
    results_file: str | Path | None = None,
    model: nn.Module | None = None,
    per_class: bool | None = None,
) -> dict[str, float]:
    """COCO metrics of ``weights`` (ours, official or mmdet; or ``model``) on the validation set of ``cfg``.

    ``results_file`` receives the COCO results (file category ids), e.g. for a test-dev upload.
    """
    dist = dist or init_distributed(device)
    dataset = build_dataset(cfg, train=False)
    if model is None:
        model = build_model(
            cfg, num_classes=dataset.num_classes, keypoint_names=dataset.keypoint_names, pretrained=weights is None
        )
        if weights is not None:
            load_detection_weights(model, weights, on_head_mismatch="error")
    model = model.to(dist.device).eval()
    results: list[dict[str, Any]] = []
    with torch.no_grad():
        metrics = make_evaluator(cfg, dataset, results, per_class)(model, dist)
    if results_file is not None and dist.is_main:
        write_json(results_file, results, indent=None)
    return metrics
