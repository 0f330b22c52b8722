"""Typed configuration of a segmentation experiment (YAML <-> dataclasses through the engine).

One YAML per official experiment lives in ``configs/seg/``; ``--set key=value`` overrides any field.
Sizes are written (H, W). ``data.num_classes`` decides PASCAL-Context's mode (59 or 60 classes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hrnet.engine.config import TrainConfig


@dataclass
class SegModelConfig:
    """Which network: a zoo name, optional ImageNet weights and backbone overrides."""

    name: str = "seg_hrnet_w48"
    pretrained: str | None = None  # ImageNet weights file for the backbone (head stays initialised)
    stage_modules: list[int] | None = None  # backbone overrides, e.g. [1, 1, 1] for tiny test models
    stage_blocks: list[int] | None = None


@dataclass
class SegDataConfig:
    """Dataset and training augmentation."""

    dataset: str = "cityscapes"  # cityscapes | pascal_context | lip | folder
    root: str = "data/cityscapes"
    num_classes: int = 19
    train_split: str = "train"
    val_split: str = "val"
    label_suffix: str = "labelIds"  # Cityscapes only: labelIds (mapped to train ids) or labelTrainIds
    crop_size: list[int] = field(default_factory=lambda: [512, 1024])
    base_size: int = 2048  # long side at scale 1.0 (0 = the image's own size)
    scale_range: list[float] = field(default_factory=lambda: [0.5, 2.0])
    resize_to: list[int] | None = None  # fixed (H, W) resize before augmentation (Context, LIP)
    flip: bool = True
    repeat: int = 1  # list the training files this many times per epoch (tiny data sets)
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])


@dataclass
class SegLossConfig:
    """Cross-entropy (ignore 255), optional class weights, optional OHEM."""

    class_weights: list[float] | None = None
    ohem: bool = False
    ohem_thresh: float = 0.9
    ohem_min_kept: int = 131072


@dataclass
class SegTestConfig:
    """Evaluation-time inference."""

    mode: str = "whole"  # whole | slide
    crop_size: list[int] | None = None  # window (H, W) for slide
    stride: list[int] | None = None  # default: 2/3 of the crop
    scales: list[float] = field(default_factory=lambda: [1.0])
    flip: bool = False
    resize_to: list[int] | None = None  # resize the image to (H, W) first; labels stay at full size
    max_images: int | None = None  # evaluate only the first N images (smoke runs)


@dataclass
class SegConfig:
    """A whole segmentation experiment."""

    model: SegModelConfig = field(default_factory=SegModelConfig)
    data: SegDataConfig = field(default_factory=SegDataConfig)
    loss: SegLossConfig = field(default_factory=SegLossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: SegTestConfig = field(default_factory=SegTestConfig)
