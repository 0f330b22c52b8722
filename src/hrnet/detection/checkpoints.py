"""Detection weights: our files, the official HRNet-Object-Detection and mmdet checkpoints, one strict loader.

The three layouts differ in names only, except for the class order of mmdet v2+:

========================  ==================================  =========================================
ours (torchvision)        official / mmdet v0.x-1.x           mmdet v2+
========================  ==================================  =========================================
backbone.body.*           backbone.*                          backbone.*
backbone.neck.reduction_  neck.reduction_conv.0 (or .conv)    neck.reduction_conv.conv
conv
backbone.neck.fpn_convs.i neck.fpn_conv.i (or fpn_convs.i.    neck.fpn_convs.i.conv
                          conv)
rpn.head.conv.0.0 /       rpn_head.rpn_conv / rpn_cls /       the same
cls_logits / bbox_pred    rpn_reg
roi_heads.box_head.fc6/7  bbox_head.shared_fcs.0/1            roi_head.bbox_head.shared_fcs.0/1
roi_heads.box_predictor.  bbox_head.fc_cls / fc_reg           roi_head.bbox_head.fc_cls / fc_reg
cls_score / bbox_pred     (background first, 81 classes)      (background *last*; no background box row)
roi_heads.mask_head.i.0   mask_head.convs.i.conv              roi_head.mask_head.convs.i.conv
roi_heads.mask_predictor. mask_head.upsample / conv_logits    the same, 80 mask channels (no background)
conv5_mask / mask_fcn_
logits
========================  ==================================  =========================================

Cascade heads have a stage index after ``bbox_head`` / ``mask_head`` (``bbox_head.2.fc_cls``) and map to
``roi_heads.box_heads.2`` / ``box_predictors.2`` / ``mask_heads.2`` / ``mask_predictors.2``. mmdet v2 rows
are reordered to ours (background moved to row 0, a zero box / mask row inserted for it), which changes
nothing in the function the network computes.

Input conventions stay the caller's business: official HRNet-Object-Detection checkpoints were trained on
BGR images (``bgr=True`` in the builders); mmdet v2 Faster / Mask / Cascade checkpoints on RGB.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hrnet.models.weights import LoadResult, load_weights

log = logging.getLogger("hrnet.detection")

BODY_PREFIXES = ("conv1.", "bn1.", "conv2.", "bn2.", "layer1.", "transition", "stage")
# output layers whose size follows the class (or keypoint) count; fine-tuning may re-initialise them
HEAD_OUTPUTS = (
    "roi_heads.box_predictor.",
    "roi_heads.box_predictors.",
    "roi_heads.mask_predictor.mask_fcn_logits.",
    "roi_heads.keypoint_predictor.",
    "head.classification_head.cls_logits.",
    "hm.2.",
)
_STAGE = r"(?:\.(\d+))?"  # an optional cascade stage index

_RENAMES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^neck\.reduction_conv\.(?:0|conv)\."), "backbone.neck.reduction_conv."),
    (re.compile(r"^neck\.fpn_convs?\.(\d+)\.(?:conv\.)?"), r"backbone.neck.fpn_convs.\1."),
    (re.compile(r"^rpn_head\.rpn_conv\."), "rpn.head.conv.0.0."),
    (re.compile(r"^rpn_head\.rpn_cls\."), "rpn.head.cls_logits."),
    (re.compile(r"^rpn_head\.rpn_reg\."), "rpn.head.bbox_pred."),
]
_HEAD_RENAMES: list[tuple[re.Pattern[str], str, str]] = [
    # (pattern after an optional "roi_head.", single-stage target, cascade target with {s})
    (re.compile(rf"^bbox_head{_STAGE}\.shared_fcs\.0\."), "roi_heads.box_head.fc6.", "roi_heads.box_heads.{s}.fc6."),
    (re.compile(rf"^bbox_head{_STAGE}\.shared_fcs\.1\."), "roi_heads.box_head.fc7.", "roi_heads.box_heads.{s}.fc7."),
    (
        re.compile(rf"^bbox_head{_STAGE}\.fc_cls\."),
        "roi_heads.box_predictor.cls_score.",
        "roi_heads.box_predictors.{s}.cls_score.",
    ),
    (
        re.compile(rf"^bbox_head{_STAGE}\.fc_reg\."),
        "roi_heads.box_predictor.bbox_pred.",
        "roi_heads.box_predictors.{s}.bbox_pred.",
    ),
    (
        re.compile(rf"^mask_head{_STAGE}\.convs\.(\d+)\.conv\."),
        "roi_heads.mask_head.{i}.0.",
        "roi_heads.mask_heads.{s}.{i}.0.",
    ),
    (
        re.compile(rf"^mask_head{_STAGE}\.upsample\."),
        "roi_heads.mask_predictor.conv5_mask.",
        "roi_heads.mask_predictors.{s}.conv5_mask.",
    ),
    (
        re.compile(rf"^mask_head{_STAGE}\.conv_logits\."),
        "roi_heads.mask_predictor.mask_fcn_logits.",
        "roi_heads.mask_predictors.{s}.mask_fcn_logits.",
    ),
]


def detect_layout(keys: Any) -> str:
    """``'hrnet'`` (ours), ``'mmdet'`` (v2+, background last) or ``'official'`` (HRNet-Object-Detection / mmdet 1.x).

    ``keys`` are normalised by :func:`hrnet.read_state_dict`, which drops a leading ``backbone.``.
    """
    keys = list(keys)
    if any(k.startswith("roi_head.") for k in keys):
        return "mmdet"
    if any(k.startswith(("rpn_head.", "bbox_head.", "mask_head.")) or re.match(r"^neck\.fpn_conv\.", k) for k in keys):
        return "official"
    if any(k.startswith("neck.reduction_conv.conv.") for k in keys):
        return "mmdet"
    return "hrnet"


def _background_first(key: str, value: Tensor) -> Tensor:
    """mmdet v2 -> torchvision class order for one output tensor (``key`` is already ours)."""
    if ".cls_score." in key:  # K+1 rows, background last -> first
        return torch.cat([value[-1:], value[:-1]])
    if ".bbox_pred." in key and value.shape[0] % 4 == 0 and value.shape[0] > 4:  # class-specific: add a bg row
        return torch.cat([value.new_zeros((4, *value.shape[1:])), value])
    if ".mask_fcn_logits." in key:  # K mask channels -> K+1 with a background channel
        return torch.cat([value.new_zeros((1, *value.shape[1:])), value])
    return value


def convert_state_dict(state: Mapping[str, Tensor], layout: str | None = None) -> dict[str, Tensor]:
    """Keys (and mmdet v2 class rows) of an official / mmdet / our state dict -> our detector's keys.

    ``state`` is normalised (:func:`hrnet.read_state_dict`); ``layout`` defaults to :func:`detect_layout`.
    """
    layout = layout or detect_layout(state)
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if layout == "hrnet":
            out["backbone." + key if key.startswith(("body.", "neck.")) else key] = value
            continue
        new = _rename(key)
        if new is None:
            log.debug("%s key %s has no counterpart here; dropped", layout, key)
            continue
        out[new] = _background_first(new, value) if layout == "mmdet" else value
    return out


def _rename(key: str) -> str | None:
    if key.startswith(BODY_PREFIXES):
        return "backbone.body." + key
    for pattern, target in _RENAMES:
        if pattern.match(key):
            return pattern.sub(target, key, count=1)
    head = key[len("roi_head.") :] if key.startswith("roi_head.") else key
    for pattern, single, cascade in _HEAD_RENAMES:
        m = pattern.match(head)
        if m is None:
            continue
        groups = m.groups()
        stage, index = groups[0], groups[1] if len(groups) > 1 else None
        target = single if stage is None else cascade
        return target.format(s=stage, i=index) + head[m.end() :]
    return None


def prepare(model: nn.Module) -> nn.Module:
    """Tell the shared loader (:func:`hrnet.load_weights`, :func:`hrnet.load_model`) how to read detection
    files into ``model``: the key conversion above, the class-count output layers and their unit."""
    model.convert_state_dict = convert_state_dict
    model.head_prefixes = HEAD_OUTPUTS
    model.head_unit = "classes (with background for R-CNN heads)"
    return model


def load_detection_weights(
    model: nn.Module, src: str | Path | Mapping[str, Any], strict: bool = True, on_head_mismatch: str = "error"
) -> LoadResult:
    """Load ours / official / mmdet detection weights into ``model`` (strict by default).

    The shared :func:`hrnet.load_weights` with the conversion of :func:`prepare`: ``on_head_mismatch='reinit'``
    keeps the model's fresh output layers where the file has another class count (fine-tuning COCO weights
    on a custom dataset) and says so; ``'error'`` (inference) raises.
    """
    return load_weights(prepare(model), src, strict=strict, on_head_mismatch=on_head_mismatch)
