"""Model names -> configurations: the one name table of the project.

A name is ``[task_]backbone``: task is ``pose_`` (HRNetV1 heatmaps), ``pose_hrnetv2_`` spelled
``pose_hrnetv2_w{W}`` (HRNetV2 heatmaps: the facial landmark / hand models), ``seg_`` (HRNetV2 segmentation)
or nothing (ImageNet classification, HRNet-Wx-C); backbone is ``hrnet_w{W}`` for any positive integer W,
``hrnet_w18_small_v1`` (alias ``hrnet_w18_small``) or ``hrnet_w18_small_v2``. The small networks differ
from ``hrnet_w{W}`` by a handful of numbers, written here once.
"""

from __future__ import annotations

import difflib
import logging
import re
from pathlib import Path
from typing import Any

from torch import nn

from hrnet.models import sources
from hrnet.models.backbone import HRNetConfig
from hrnet.models.task_models import HRNetClassifier, HRNetFeatures, HRNetPose, HRNetPoseV2, HRNetSegmentation
from hrnet.models.weights import LoadResult, describe_keys, load_weights, mismatched_head_keys, read_state_dict

# the small variants of the official repositories, as differences from the standard topology
SMALL_VARIANTS: dict[str, dict[str, Any]] = {
    "hrnet_w18_small_v1": dict(
        width=16, stage1_blocks=1, stage1_channels=32, stage_modules=(1, 1, 1), stage_blocks=(2, 2, 2)
    ),
    "hrnet_w18_small_v2": dict(
        width=18, stage1_blocks=2, stage1_channels=64, stage_modules=(1, 3, 2), stage_blocks=(2, 2, 2)
    ),
}
ALIASES = {"hrnet_w18_small": "hrnet_w18_small_v1"}
OFFICIAL_WIDTHS = (18, 30, 32, 40, 44, 48, 64)
TASKS = {
    "": dict(upsample="nearest"),
    "pose_": dict(upsample="nearest", multi_scale_output=False),
    "seg_": dict(upsample="bilinear", align_corners=False),
    # the official landmark code and mmpose's face / hand HRNetV2 fuse with bilinear upsampling as well
    "pose_v2_": dict(upsample="bilinear", align_corners=False),
}
DEFAULT_INPUT = {"": (224, 224), "pose_": (256, 192), "seg_": (1024, 2048), "pose_v2_": (256, 256)}
V2_POSE = "pose_hrnetv2_"  # spelled as mmpose and the landmark papers name it; internally task "pose_v2_"

# ImageNet weights of the official repository, as published on the Hugging Face hub by timm
HUB_REPOS = {
    "hrnet_w18_small_v1": "timm/hrnet_w18_small.ms_in1k",
    "hrnet_w18_small_v2": "timm/hrnet_w18_small_v2.ms_in1k",
    **{f"hrnet_w{w}": f"timm/hrnet_w{w}.ms_in1k" for w in OFFICIAL_WIDTHS},
}
log = logging.getLogger("hrnet")
_BACKBONE_RE = re.compile(r"^hrnet_w(\d+)$")


def _split(name: str) -> tuple[str, str]:
    """'pose_hrnet_w32' -> ('pose_', 'hrnet_w32'), 'pose_hrnetv2_w18' -> ('pose_v2_', 'hrnet_w18'), resolving
    aliases; unknown names raise with suggestions."""
    if name.startswith(V2_POSE):
        task, backbone = "pose_v2_", "hrnet_" + name[len(V2_POSE) :]
    else:
        for task in ("pose_", "seg_"):
            if name.startswith(task):
                backbone = name[len(task) :]
                break
        else:
            task, backbone = "", name
    backbone = ALIASES.get(backbone, backbone)
    if backbone in SMALL_VARIANTS:
        return task, backbone
    m = _BACKBONE_RE.match(backbone)
    if m is None:
        close = difflib.get_close_matches(name, list_models(), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown model name {name!r}{hint} (any width works: hrnet_w{{W}}, pose_hrnet_w{{W}}, "
            f"seg_hrnet_w{{W}}; see `hrnet list`)"
        )
    if int(m.group(1)) <= 0:
        raise ValueError(f"{name!r}: width must be a positive integer")
    return task, backbone


def backbone_config(name: str, **overrides: Any) -> HRNetConfig:
    """The :class:`HRNetConfig` of a model name, with the task's defaults and any overrides applied."""
    task, backbone = _split(name)
    base = dict(SMALL_VARIANTS[backbone]) if backbone in SMALL_VARIANTS else {"width": int(backbone[7:])}
    base.update(TASKS[task])
    cfg = HRNetConfig(**base)
    return cfg.with_overrides(**overrides) if overrides else cfg


def list_models(filter: str | None = None) -> list[str]:
    """Names of the official configurations (any other width works too)."""
    backbones = ["hrnet_w18_small", "hrnet_w18_small_v1", "hrnet_w18_small_v2"]
    backbones += [f"hrnet_w{w}" for w in OFFICIAL_WIDTHS]
    names = backbones + [f"pose_{b}" for b in backbones[1:]] + [f"seg_{b}" for b in backbones[1:]]
    names += [f"pose_hrnetv2_w{w}" for w in OFFICIAL_WIDTHS]
    return [n for n in names if filter is None or filter in n]


def default_input_size(name: str) -> tuple[int, int]:
    """The (H, W) input of the paper's tables for this kind of model."""
    return DEFAULT_INPUT[_split(name)[0]]


def create_model(
    name: str,
    pretrained: bool | str | Path = False,
    *,
    num_classes: int | None = None,
    num_joints: int | None = None,
    head: str = "c",
    features_only: bool = False,
    feature_stage: int = 4,
    out_indices: tuple[int, ...] | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a named model; ``overrides`` change backbone fields (see :class:`HRNetConfig`).

    ``pretrained``: True downloads the official ImageNet weights of a classification width from the
    Hugging Face hub (needs ``huggingface_hub``); a path loads a local file. Either is loaded strictly,
    except that a classifier of another class count is left re-initialised (with a message).
    """
    task, _ = _split(name)
    cfg = backbone_config(name, **overrides)
    model: nn.Module
    if features_only:
        model = HRNetFeatures(cfg, stage=feature_stage, out_indices=out_indices)
    elif task == "pose_":
        model = HRNetPose(cfg, num_joints=17 if num_joints is None else num_joints)
    elif task == "pose_v2_":
        model = HRNetPoseV2(cfg, num_joints=98 if num_joints is None else num_joints)
    elif task == "seg_":
        model = HRNetSegmentation(cfg, num_classes=19 if num_classes is None else num_classes)
    else:
        model = HRNetClassifier(cfg, num_classes=1000 if num_classes is None else num_classes, head=head)
    if pretrained:
        load_pretrained(model, name, pretrained)
    return model


def load_pretrained(model: nn.Module, name: str, pretrained: bool | str | Path) -> LoadResult:
    """ImageNet (or other task) weights to start training ``model`` from: a local file, or the official
    ones from the hub for ``name``.

    Fine-tuning: a head of another size is re-initialised (logged); heads that the file cannot fill
    (task heads on a classification file, feature extractors) are reported and left as initialised.
    """
    task, backbone = _split(name)
    if pretrained is True:
        if backbone not in HUB_REPOS:
            raise ValueError(f"no published ImageNet weights for {backbone!r}; available: {sorted(HUB_REPOS)}")
        path = sources.hub_download(HUB_REPOS[backbone])
    else:
        path = sources.resolve_source(pretrained)
    state = read_state_dict(path)
    strict = not task and not mismatched_head_keys(model, state) and not hasattr(model, "feature_info")
    result = load_weights(model, state, strict=strict, on_head_mismatch="reinit")
    if not strict and result.missing:
        log.info("%s: %s model tensors not in the file (kept as initialised)", path, describe_keys(result.missing, 4))
    return result
