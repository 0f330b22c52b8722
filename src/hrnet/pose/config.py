"""Typed configuration of a pose experiment (``configs/pose/**.yaml`` <-> dataclasses through the engine).

Sizes in ``data`` are (w, h) as in the official pose configs; ``--set key=value`` overrides any field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hrnet.engine.config import TrainConfig


@dataclass
class PoseModelConfig:
    """The network: a zoo name (``pose_hrnet_w32``), ImageNet / pose init weights, backbone overrides."""

    name: str = "pose_hrnet_w32"
    pretrained: str | None = None  # classification (ImageNet) or pose checkpoint; loaded non-strictly
    overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {stage_modules: [1, 1, 1]}


@dataclass
class PoseDataConfig:
    """Dataset files, keypoint set, crop geometry and training augmentation. Sizes are (w, h)."""

    dataset: str = "coco"  # coco | mpii
    root: str = "data/coco"
    train_ann: str = "annotations/person_keypoints_train2017.json"
    train_images: str = "images/train2017"
    val_ann: str = "annotations/person_keypoints_val2017.json"
    val_images: str = "images/val2017"
    keypoint_set: str = "coco"  # built-in name or a YAML file
    input_size: list[int] = field(default_factory=lambda: [192, 256])
    heatmap_size: list[int] | None = None  # default input / 4
    sigma: float = 2.0
    use_joint_weights: bool = False
    rot_factor: float = 45.0
    rot_prob: float = 0.6
    scale_factor: float = 0.35
    flip: bool = True
    half_body_prob: float = 0.3
    num_joints_half_body: int = 8


@dataclass
class PoseTestConfig:
    """Evaluation: person boxes, flip test, decoding and the COCO rescoring / NMS thresholds."""

    boxes: str = "gt"  # "gt" or a person detections file (COCO results format), relative to data.root
    det_score_thr: float = 0.0
    flip_test: bool = True
    shift_heatmap: bool = True
    dark: bool = False
    in_vis_thr: float = 0.2
    oks_thr: float = 0.9
    use_nms: bool = True
    batch_size: int = 32
    workers: int = 0


@dataclass
class PoseConfig:
    """A whole pose experiment (``configs/pose/**.yaml``)."""

    model: PoseModelConfig = field(default_factory=PoseModelConfig)
    data: PoseDataConfig = field(default_factory=PoseDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: PoseTestConfig = field(default_factory=PoseTestConfig)

    def __post_init__(self) -> None:
        if self.data.dataset not in ("coco", "mpii"):
            raise ValueError(f"data.dataset must be 'coco' or 'mpii', got {self.data.dataset!r}")
        if len(self.data.input_size) != 2:
            raise ValueError(f"data.input_size must be [w, h], got {self.data.input_size}")
