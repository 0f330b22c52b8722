"""Typed configuration of an ImageNet-style classification experiment (YAML <-> dataclasses).

One YAML per official width lives in ``configs/cls/imagenet/``; ``--set key=value`` overrides any field.
``train.optim.lr`` is the learning rate for a global batch of ``lr_reference_batch`` images (0.1 for 256 in
the paper); the optimizer is built with ``lr * global_batch / lr_reference_batch`` where
``global_batch = train.batch_size * world_size * train.accum_steps`` (linear scaling, see
:func:`hrnet.classification.train.scaled_lr`). ``lr_reference_batch: 0`` turns scaling off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hrnet.engine.config import OptimConfig, ScheduleConfig, TrainConfig


@dataclass
class ClsModelConfig:
    """Which network: a zoo name, class count, head, optional weights and backbone overrides."""

    name: str = "hrnet_w18"
    num_classes: int = 1000
    head: str = "c"  # c (HRNet-Wx-C, the paper's) | ci | cii (Table 14 alternatives)
    pretrained: str | None = None  # "hub" = official ImageNet weights; or a local weights file
    width: int | None = None  # backbone overrides, for tiny test models
    stem_width: int | None = None
    stage1_channels: int | None = None
    stage1_blocks: int | None = None
    stage_modules: list[int] | None = None
    stage_blocks: list[int] | None = None
    bn_momentum: float | None = None  # BatchNorm running-stat momentum (torch convention; default 0.1)

    def overrides(self) -> dict:
        """The backbone overrides that are set, as ``create_model`` keyword arguments."""
        keys = (
            "width",
            "stem_width",
            "stage1_channels",
            "stage1_blocks",
            "stage_modules",
            "stage_blocks",
            "bn_momentum",
        )
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass
class ClsDataConfig:
    """Where the images are and how they are augmented.

    ``train`` / ``val`` are ImageFolder roots (``root/<class>/<image>``) or list files
    (``relative/path class_index`` per line). ``classes`` is an optional class-name file (one name, or
    ``id<TAB>name``, per line); empty means: the folder names, or the ImageNet names for 1000 classes.
    """

    train: str = "data/imagenet/train"
    val: str | None = "data/imagenet/val"  # null: train without evaluation
    classes: str | None = None
    crop_size: int = 224
    resize_size: int = 256  # eval: shorter side resized to this, then centre crop (224/256 = 0.875)
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])  # RandomResizedCrop area range
    hflip: float = 0.5
    interpolation: str = "bilinear"
    bad_images: str = "skip"  # skip (logged, counted) | error


@dataclass
class ClsTestConfig:
    """Evaluation settings."""

    batch_size: int = 64
    workers: int = 2
    weights: str | None = None  # weights for `hrnet cls eval` when --weights is not given


def _paper_train() -> TrainConfig:
    """Appendix A: 100 epochs, SGD Nesterov 0.9, wd 1e-4, lr 0.1 per 256 images, x0.1 at 30/60/90."""
    return TrainConfig(
        epochs=100,
        batch_size=32,
        workers=4,
        optim=OptimConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
        schedule=ScheduleConfig(name="multistep", milestones=[30, 60, 90], gamma=0.1),
    )


@dataclass
class ClsConfig:
    """A whole classification experiment; defaults are the paper's ImageNet recipe for HRNet-W18-C."""

    model: ClsModelConfig = field(default_factory=ClsModelConfig)
    data: ClsDataConfig = field(default_factory=ClsDataConfig)
    train: TrainConfig = field(default_factory=_paper_train)
    test: ClsTestConfig = field(default_factory=ClsTestConfig)
    lr_reference_batch: int = 256  # global batch that train.optim.lr is meant for (0 = use lr as is)
