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

from hrnet.classification.check import check_cls_data
from hrnet.classification.classes import imagenet_classes, read_classes, write_classes
from hrnet.classification.config import ClsConfig
from hrnet.classification.datasets import ClassificationDataset, build_dataset, collate_skip
from hrnet.classification.evaluation import evaluate_classifier
from hrnet.classification.model import build_model, make_card
from hrnet.classification.transforms import eval_transform, train_transform

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
    cfg: ClsConfig, out_dir: str | Path, resume: str | Path | None = None, device: str | None = None
) -> dict[str, float]:
    """Train as ``cfg`` says, writing the engine's outputs and ``classes.txt`` into ``out_dir``."""
    from hrnet.engine.config import config_to_dict
    from hrnet.engine.data import seed_everything
    from hrnet.engine.distributed import init_distributed
    from hrnet.engine.trainer import Trainer

    dist = init_distributed(device)
    if dist.is_main:  # empty classes and bad list lines reported before the first epoch
        check_cls_data(cfg, level="quick").log_summary(log, "hrnet cls check-data")
    seed_everything(cfg.train.seed)  # initial weights depend on the seed only
    train_set, val_set = build_datasets(cfg)
    out_dir = Path(out_dir)
    classes = classes_for(cfg, train_set)
    if dist.is_main:
        write_classes(classes, out_dir / CLASSES_FILE)
    model = build_model(cfg.model)

    t = cfg.train
    lr = scaled_lr(t.optim.lr, t.batch_size, dist.world_size, t.accum_steps, cfg.lr_reference_batch)
    train_cfg = dataclasses.replace(t, optim=dataclasses.replace(t.optim, lr=lr))
    if dist.is_main:
        log.info(
            "lr %.4g = %.4g x global batch %d / %d",
            lr,
            t.optim.lr,
            t.batch_size * dist.world_size * t.accum_steps,
            cfg.lr_reference_batch,
        )

    evaluate = None
    if val_set is not None:
        test = cfg.test

        def evaluate(m: nn.Module, d: Any) -> dict[str, float]:
            return evaluate_classifier(
                m, val_set, test.batch_size, test.workers, d.device, d.rank, d.world_size, amp=t.amp
            )

    trainer = Trainer(
        model,
        train_set,
        train_cfg,
        out_dir,
        cross_entropy_loss,
        evaluate,
        collate_fn=collate_skip,
        best_metric="top1" if evaluate else None,
        dist=dist,
        config_dict=config_to_dict(cfg),
        card=make_card(cfg, classes),
    )
    return trainer.fit(resume=resume)


def evaluate(
    cfg: ClsConfig, weights: str | Path | None, device: str | None = None, data: str | None = None, dist: Any = None
) -> dict[str, float]:
    """Top-1 / top-5 of ``weights`` (the config's model when the file has no card) on ``data`` (default
    ``data.val``), sharded over DDP ranks."""
    from hrnet.classification.api import Classifier
    from hrnet.engine.distributed import init_distributed

    dist = dist or init_distributed(device)
    source = data or cfg.data.val
    if not source:
        raise ValueError("no evaluation data: pass --data or set data.val in the config")
    clf = Classifier(
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
        batch_size=cfg.test.batch_size,
        workers=cfg.test.workers,
        bad_images=cfg.data.bad_images,
        rank=dist.rank,
        world_size=dist.world_size,
    )
