"""Typed configuration of a detection experiment (``configs/det/**.yaml`` <-> dataclasses through the engine).

The data keys are those of the other tasks (``data.root``, ``data.train_ann``, ``data.val_ann``,
``data.train_images``, ``data.val_images``; relative paths are taken under ``data.root``). ``data.min_size``
lists the shorter sides drawn in training (one per batch; multi-scale training when several) and its last
entry is the test size, as in torchvision's transform.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hrnet.detection.conventions import LAYOUTS
from hrnet.detection.model import parse_name
from hrnet.engine.config import TrainConfig


@dataclass
class DetModelConfig:
    """The detector: a name (``faster_rcnn_hrnet_w32``), its initialisation and builder keywords."""

    name: str = "faster_rcnn_hrnet_w32"
    pretrained: bool | str | None = None  # ImageNet backbone: true (official, from the hub) or a file
    weights: str | None = None  # detection weights to start from (ours / official / mmdet); other class counts re-init
    overrides: dict[str, Any] = field(default_factory=dict)  # backbone overrides, e.g. {stage_modules: [1, 1, 1]}
    norm_eval: bool = True  # backbone BN statistics frozen in training (the recipes' norm_eval)
    # whose conventions the detector runs with (anchors, RoIAlign, proposals, input colours): hrnet (ours =
    # torchvision's), official (HRNet-Object-Detection / mmdet 1.x) or mmdet (2.x+). Unset: training uses ours;
    # evaluating or predicting follows the layout of the weights loaded (hrnet.detection.conventions)
    layout: str | None = None
    # input colours: None = the layout's (RGB with the ImageNet mean / std for every R-CNN source; BGR only for
    # FCOS checkpoints of HRNet-FCOS / mmdet). bgr: true is for your own BGR-trained weights
    bgr: bool | None = None
    image_mean: list[float] | None = None  # in the order the network sees the channels, for images in [0, 1]
    image_std: list[float] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # more builder keywords (rpn_post_nms_top_n_train, ...)


@dataclass
class DetDataConfig:
    """COCO-format files, image sizes and augmentation."""

    root: str = "data/coco"
    train_ann: str = "annotations/instances_train2017.json"
    train_images: str = "train2017"
    val_ann: str = "annotations/instances_val2017.json"
    val_images: str = "val2017"
    min_size: list[int] = field(default_factory=lambda: [800])  # training shorter sides; the last one is the test size
    max_size: int = 1333
    flip_prob: float = 0.5
    aspect_ratio_group_factor: int = 3  # 0: no grouping
    skip_empty: bool = True  # training: skip images without a usable annotation


@dataclass
class DetOptimGroups:
    """Per-parameter optimiser tweaks of some recipes (FCOS: biases at 2x the LR and without weight decay)."""

    bias_lr_mult: float = 1.0
    bias_decay: bool = True


@dataclass
class DetTestConfig:
    """Evaluation and prediction settings (the COCO protocol: score 0.05, NMS 0.5, 100 per image)."""

    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    detections_per_img: int = 100
    batch_size: int = 1
    workers: int = 0
    per_class: bool = False


@dataclass
class DetConfig:
    """A whole detection experiment (``configs/det/**.yaml``)."""

    model: DetModelConfig = field(default_factory=DetModelConfig)
    data: DetDataConfig = field(default_factory=DetDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim_groups: DetOptimGroups = field(default_factory=DetOptimGroups)
    test: DetTestConfig = field(default_factory=DetTestConfig)

    def __post_init__(self) -> None:
        parse_name(self.model.name)
        if not self.data.min_size or min(self.data.min_size) < 1 or self.data.max_size < 1:
            raise ValueError(
                f"data.min_size must list positive sizes and data.max_size be positive, got "
                f"{self.data.min_size} / {self.data.max_size}"
            )
        for name in ("image_mean", "image_std"):
            value = getattr(self.model, name)
            if value is not None and len(value) != 3:
                raise ValueError(f"model.{name} needs 3 values, got {value}")
        if self.model.layout is not None and self.model.layout not in LAYOUTS:
            raise ValueError(f"model.layout must be one of {LAYOUTS}, got {self.model.layout!r}")
        if self.test.batch_size < 1:
            raise ValueError(f"test.batch_size must be >= 1, got {self.test.batch_size}")
