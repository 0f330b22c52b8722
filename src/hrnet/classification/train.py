"""Training an HRNet-Wx-C classifier with the shared engine (the paper's Appendix A recipe).

The engine builds the optimizer from ``cfg.train.optim``; here ``optim.lr`` is first scaled linearly
with the global batch: ``lr = base_lr * batch_size * world_size * accum_steps / lr_reference_batch``
(0.1 for 256 images in the paper). The class names of the training set are written to
``OUT/classes.txt`` next to the weights, so ``predict`` can name the classes of a fine-tuned model.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hrnet.classification.api import Classifier
from hrnet.classification.check import check_cls_data
from hrnet.classification.classes import imagenet_classes, read_classes, write_classes
from hrnet.classification.config import ClsConfig
from hrnet.classification.datasets import ClassificationDataset, build_dataset, collate_skip
from hrnet.classification.evaluation import evaluate_classifier
from hrnet.classification.model import build_model, make_card
from hrnet.classification.transforms import eval_transform, train_transform
from hrnet.engine.distributed import DistInfo, init_distributed
from hrnet.engine.launch import RunContext, TrainSetup, run_training

log = logging.getLogger(__name__)
CLASSES_FILE = "classes.txt"


def scaled_lr(base_lr: float, batch_size: int, world_size: int, accum_steps: int, reference_batch: int) -> float:
    """Linear scaling rule: ``base_lr`` is meant for ``reference_batch`` images per optimizer step."""
    if reference_batch <= 0:
        return base_lr
    return base_lr * batch_size * world_size * accum_steps / reference_batch


def cross_entropy_loss(model: nn.Module, batch: Any, device: torch.device) -> tuple[Tensor, dict[str, float]]:
    """The engine's ``loss_fn``: softmax cross-entropy on a ``collate_skip`` batch."""
    images, labels, skipped = batch
    if images.numel() == 0:  # every image of the batch was unreadable: a zero step that touches all weights
        zero = sum(p.sum() for p in model.parameters()) * 0.0
        return zero, {"skipped": float(skipped)}
    logits = model(images.to(device, non_blocking=True))
    loss = F.cross_entropy(logits.float(), labels.to(device, non_blocking=True))
    return loss, {"skipped": float(skipped)} if skipped else {}


def classes_for(cfg: ClsConfig, dataset: ClassificationDataset | None = None) -> list[tuple[str, str]]:
    """(id, readable name) of every class: the ``data.classes`` file, else an ImageFolder's folder names
    (ImageNet wnids get their ImageNet names), else the ImageNet classes for 1000, else the indices."""
    n = cfg.model.num_classes
    if cfg.data.classes:
        pairs = read_classes(cfg.data.classes)
        if len(pairs) != n:
            raise ValueError(f"{cfg.data.classes}: {len(pairs)} class names for a model of {n} classes")
        return pairs
    if dataset is not None and Path(dataset.source).is_dir():
        wnid_names = dict(imagenet_classes())
        return [(c, wnid_names.get(c, c)) for c in dataset.classes]
    return list(imagenet_classes()) if n == 1000 else [(str(i), str(i)) for i in range(n)]


def build_datasets(cfg: ClsConfig, with_val: bool = True) -> tuple[ClassificationDataset, ClassificationDataset | None]:
    """Training and validation datasets; the validation split uses the training split's class list."""
    d = cfg.data
    ids = [key for key, _ in read_classes(d.classes)] if d.classes else None
    train_set = build_dataset(
        d.train,
        train_transform(d.crop_size, tuple(d.crop_scale), d.hflip, d.interpolation),
        classes=ids,
        num_classes=cfg.model.num_classes,
        bad_images=d.bad_images,
    )
    val_set = None
    if with_val and d.val:
        classes = ids or (train_set.classes if Path(d.train).is_dir() and Path(d.val).is_dir() else None)
        val_set = build_dataset(
            d.val,
            eval_transform(d.crop_size, d.resize_size, d.interpolation),
            classes=classes,
            num_classes=cfg.model.num_classes,
            bad_images=d.bad_images,
        )
    return train_set, val_set


def train(
    cfg: ClsConfig,
    out: str | Path | None,
    resume: str | Path | None = None,
    device: str | None = None,
    *,
    exist_ok: bool = False,
    dist: DistInfo | None = None,
) -> dict[str, float]:
    """Train as ``cfg`` says, writing the engine's outputs and ``classes.txt`` into the run folder (the
    engine's rule, :mod:`hrnet.engine.rundir`); ``cfg`` is not changed."""

    def build(ctx: RunContext) -> TrainSetup:
        c, d = ctx.cfg, ctx.dist
        train_set, val_set = build_datasets(c)
        classes = classes_for(c, train_set)
        if d.is_main:
            write_classes(classes, ctx.run_dir / CLASSES_FILE)
        model = build_model(c)
        t = c.train
        lr = scaled_lr(t.optim.lr, t.batch_size, d.world_size, t.accum_steps, c.lr_reference_batch)
        if d.is_main:
            log.info(
                "lr %.4g = %.4g x global batch %d / %d",
                lr,
                t.optim.lr,
                t.batch_size * d.world_size * t.accum_steps,
                c.lr_reference_batch,
            )
        evaluate = None
        if val_set is not None:
            test = c.test

            def evaluate(m: nn.Module, dist: DistInfo) -> dict[str, float]:
                return evaluate_classifier(
                    m, val_set, test.batch_size, test.workers, dist.device, dist.rank, dist.world_size, amp=t.amp
                )

        return TrainSetup(
            model=model,
            train_set=train_set,
            loss_fn=cross_entropy_loss,
            evaluate=evaluate,
            best_metric="top1" if evaluate else None,
            card=make_card(c, classes=classes),
            collate_fn=collate_skip,
            train_cfg=dataclasses.replace(t, optim=dataclasses.replace(t.optim, lr=lr)),
        )

    return run_training(
        cfg,
        out,
        build,
        task="cls",
        check=lambda c: check_cls_data(c, level="quick"),
        logger=log,
        resume=resume,
        exist_ok=exist_ok,
        device=device,
        dist=dist,
    )


def evaluate(
    cfg: ClsConfig,
    weights: str | Path | None,
    device: str | None = None,
    *,
    dist: DistInfo | None = None,
    data: str | Path | None = None,
    classifier: Classifier | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
) -> dict[str, float]:
    """Top-1 / top-5 (fractions in [0, 1]), ``count`` and ``skipped`` of ``weights`` on ``data`` (default
    ``data.val``), sharded over DDP ranks: the one evaluation path of ``hrnet cls eval`` and the API.

    The network is ``classifier`` when given (``hrnet cls eval`` builds it from its flags: a carded file
    alone, ``--model`` or ``--config``), else the config's model loaded strictly from ``weights`` (a card in
    the file wins). ``batch_size`` / ``workers`` default to the config's ``test`` section.
    """
    dist = dist or init_distributed(device)
    source = data or cfg.data.val
    if not source:
        raise ValueError("no evaluation data: pass --data or set data.val in the config")
    clf = classifier or Classifier(
        cfg.model.name,
        weights,
        num_classes=cfg.model.num_classes,
        head=cfg.model.head,
        class_names=cfg.data.classes,
        crop_size=cfg.data.crop_size,
        resize_size=cfg.data.resize_size,
        interpolation=cfg.data.interpolation,
        device=dist.device,
        **cfg.model.overrides(),
    )
    return clf.evaluate(
        source,
        batch_size=batch_size or cfg.test.batch_size,
        workers=cfg.test.workers if workers is None else workers,
        bad_images=cfg.data.bad_images,
        rank=dist.rank,
        world_size=dist.world_size,
    )
