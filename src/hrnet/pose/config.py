"""Typed configuration of a pose experiment (``configs/pose/**.yaml`` <-> dataclasses through the engine).

Sizes in ``data`` are (w, h) as in the official pose configs; ``--set key=value`` overrides any field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hrnet.engine.config import TrainConfig
from hrnet.paths import under_root
from hrnet.pose.keypoints import FROM_ANNOTATIONS, KeypointSet, builtin_keypoint_sets, load_keypoint_set

DATASETS = ("coco", "mpii", "face")


@dataclass
class PoseModelConfig:
    """The network: a zoo name (``pose_hrnet_w32``), ImageNet / pose init weights, backbone overrides."""

    name: str = "pose_hrnet_w32"
    pretrained: str | None = None  # classification (ImageNet) or pose checkpoint; loaded non-strictly
    overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {stage_modules: [1, 1, 1]}


@dataclass
class PoseDataConfig:
    """Dataset files, keypoint set, crop geometry and training augmentation. Sizes are (w, h)."""

    # coco (COCO-style keypoints, COCO-WholeBody included) | mpii (official json) | face (facial landmarks:
    # mmpose's COCO-style .json or the official HRNet-Facial-Landmark-Detection .csv; see hrnet.pose.landmarks)
    dataset: str = "coco"
    root: str = "data/coco"
    train_ann: str = "annotations/person_keypoints_train2017.json"
    train_images: str = "images/train2017"
    val_ann: str = "annotations/person_keypoints_val2017.json"
    val_images: str = "images/val2017"
    # a shipped set (coco, mpii, crowdpose, aic, ochuman, halpe, coco_wholebody, hand, wflw, 300w, cofw,
    # aflw), a YAML file (relative to this config file), or from_annotations (names and skeleton from
    # train_ann's categories)
    keypoint_set: str = "coco"
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
    aug_sampling: str = "normal"  # normal (body recipe: clipped Gaussians) | uniform (official landmark recipe)


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
    # facial landmarks: the NME normaliser; auto = the data set's official one (wflw, 300w: outer eye
    # corners; cofw: pupils; aflw: box size), else "box" or "keypoints:A,B" (0-based landmark indices)
    nme_norm: str = "auto"


@dataclass
class PoseConfig:
    """A whole pose experiment (``configs/pose/**.yaml``)."""

    model: PoseModelConfig = field(default_factory=PoseModelConfig)
    data: PoseDataConfig = field(default_factory=PoseDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: PoseTestConfig = field(default_factory=PoseTestConfig)

    def resolve_paths(self, config_dir: Path) -> None:
        """Called by ``load_config`` with the YAML file's folder: a relative ``data.keypoint_set`` file is
        looked up there first (then, as given, in the working directory, e.g. for a ``--set`` value)."""
        self.data.keypoint_set = resolve_keypoint_set_path(self.data.keypoint_set, config_dir)

    def __post_init__(self) -> None:
        if self.data.dataset not in DATASETS:
            raise ValueError(f"data.dataset must be one of {', '.join(DATASETS)}, got {self.data.dataset!r}")
        if self.data.aug_sampling not in ("normal", "uniform"):
            raise ValueError(f"data.aug_sampling must be 'normal' or 'uniform', got {self.data.aug_sampling!r}")
        if len(self.data.input_size) != 2:
            raise ValueError(f"data.input_size must be [w, h], got {self.data.input_size}")


def resolve_keypoint_set_path(spec: str, config_dir: str | Path) -> str:
    """``data.keypoint_set`` with a relative YAML path made absolute against ``config_dir`` when the file is
    there; shipped names, ``from_annotations``, absolute paths and paths found nowhere are returned as given."""
    if spec == FROM_ANNOTATIONS or spec.lower() in builtin_keypoint_sets() or Path(spec).is_absolute():
        return spec
    candidate = Path(config_dir) / spec
    return str(candidate.resolve()) if candidate.is_file() else spec


def resolve_keypoint_set(data: PoseDataConfig) -> KeypointSet:
    """The keypoint set ``data`` names; ``from_annotations`` reads it from the training annotation file
    (``data.root / data.train_ann``)."""
    if data.keypoint_set == FROM_ANNOTATIONS:
        if data.dataset != "coco":
            raise ValueError(
                f"data.keypoint_set={FROM_ANNOTATIONS} needs COCO-style annotations "
                f"(data.dataset: coco), not {data.dataset!r}"
            )
        return load_keypoint_set(FROM_ANNOTATIONS, annotations=under_root(data.root, data.train_ann))
    return load_keypoint_set(data.keypoint_set)
