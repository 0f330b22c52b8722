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


TEST_PROTOCOLS = ("official-cityscapes", "official-generic", "ours")
TEST_MODES = ("auto", "whole", "slide")


def _check_pair(name: str, value: list[int] | None) -> None:
    if value is not None and (len(value) != 2 or any(int(v) < 1 for v in value)):
        raise ValueError(f"test.{name} must be two positive integers (H, W) or null, got {value!r}")


@dataclass
class SegTestConfig:
    """Evaluation-time inference; the same settings drive ``hrnet seg eval``, ``predict`` and ``Segmenter``.

    ``protocol`` says how views are made and merged, so that published weights give the published labels
    (details and the paper tables they reproduce: ``docs/seg-protocols.md``):

    * ``official-cityscapes`` -- the official Cityscapes test: for every scale the long side becomes
      ``base_size * s``; scales <= 1 run on the whole image, larger ones in windows of ``crop_size`` with
      stride = crop (the last window pushed back flush with the far edge); the logits of the image and its
      mirror are averaged, ``exp`` taken, and these scores are summed over scales.
    * ``official-generic`` -- the official base protocol (PASCAL-Context, and LIP with ``resize_to``): the
      same resizing and merging, but an image that fits in the crop runs once, padded with black, and a
      larger one in windows of stride ``int(2/3 crop)`` starting at multiples of the stride, every window
      padded with black to the crop size.
    * ``ours`` -- the library's own averaging of softmax probabilities over scales and flips, windows
      of stride ``ceil(2/3 crop)`` with the last one flush, zero padding in normalised space.

    ``base_size`` is the long side (pixels) at scale 1.0: Cityscapes 2048, PASCAL-Context 520, LIP 473;
    0 means the (resized) image's own long side. ``mode``: ``auto`` = the protocol's own choice of
    whole-image vs windows (``ours``: whole); ``whole`` = one pass per scale, no windows or padding;
    ``slide`` = windows at every scale (``ours`` and ``official-cityscapes``; ``official-generic``'s rule
    already is "windows unless the image fits"). ``crop_size`` (H, W) is the window, needed by the official
    protocols (the official tests use the test image size: 1024x2048, 480x480, 473x473). ``stride`` (H, W)
    overrides the protocol's stride. ``resize_to`` (H, W) resizes the image (OpenCV bilinear) before
    anything else, and the prediction is upsampled back to the label/image size (LIP: 473x473).
    """

    protocol: str = "ours"  # official-cityscapes | official-generic | ours
    base_size: int = 0  # long side at scale 1.0 (0 = the image's own)
    mode: str = "auto"  # auto | whole | slide
    crop_size: list[int] | None = None  # window (H, W)
    stride: list[int] | None = None  # default: the protocol's (crop; int(2/3 crop); ceil(2/3 crop))
    scales: list[float] = field(default_factory=lambda: [1.0])
    flip: bool = False
    resize_to: list[int] | None = None  # resize the image to (H, W) first; labels stay at full size
    max_images: int | None = None  # evaluate only the first N images (smoke runs)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ``ValueError`` naming the key when a value is out of range (also after later edits)."""
        if self.protocol not in TEST_PROTOCOLS:
            raise ValueError(f"test.protocol must be one of {list(TEST_PROTOCOLS)}, got {self.protocol!r}")
        if self.mode not in TEST_MODES:
            raise ValueError(f"test.mode must be one of {list(TEST_MODES)}, got {self.mode!r}")
        if isinstance(self.base_size, bool) or not isinstance(self.base_size, int) or self.base_size < 0:
            raise ValueError(f"test.base_size must be an integer >= 0 (0 = the image's size), got {self.base_size!r}")
        for name in ("crop_size", "stride", "resize_to"):
            _check_pair(name, getattr(self, name))
        if not self.scales or any(float(s) <= 0 for s in self.scales):
            raise ValueError(f"test.scales must be a non-empty list of positive numbers, got {self.scales!r}")
        if self.max_images is not None and self.max_images < 1:
            raise ValueError(f"test.max_images must be >= 1 or null, got {self.max_images!r}")


@dataclass
class SegConfig:
    """A whole segmentation experiment."""

    model: SegModelConfig = field(default_factory=SegModelConfig)
    data: SegDataConfig = field(default_factory=SegDataConfig)
    loss: SegLossConfig = field(default_factory=SegLossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: SegTestConfig = field(default_factory=SegTestConfig)
