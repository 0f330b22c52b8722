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
are reordered to ours where classes live, in the RoI heads only (background moved to row 0, a zero box / mask
row inserted for it), which changes nothing in the function the network computes; the RPN has no classes
(``rpn_reg``: 4 rows per anchor) and is never reordered. A key with no counterpart here is kept under its
own name, so the strict loader names it instead of it being dropped unseen.

Names are half of a checkpoint; the other half is how its framework ran it (anchor placement, RoIAlign,
input colours): see :mod:`hrnet.detection.conventions`. A detector built without a ``layout`` takes the
conventions of the layout it loads (:func:`~hrnet.detection.conventions.follow_layout`). All three R-CNN
layouts feed RGB with the ImageNet mean / std.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from hrnet.detection.conventions import follow_layout
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


def _background_first(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """mmdet v2 -> torchvision class order of the RoI heads' outputs (keys already ours).

    Only where classes live: every ``cls_score`` (K+1 rows, background last -> first), the class-specific
    ``box_predictor.bbox_pred`` of Faster / Mask R-CNN (4K rows -> 4(K+1), a zero background row first; the
    cascade's class-agnostic 4 rows stay) and the mask logits (K channels -> K+1). K is read from the
    ``cls_score`` rows. The RPN (``rpn.head``) has no classes and is left alone.
    """
    scores = [v for k, v in state.items() if k.startswith("roi_heads.") and k.endswith(".cls_score.weight")]
    if not scores:
        return dict(state)
    classes = scores[0].shape[0] - 1
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith("roi_heads.") and ".cls_score." in key:
            value = torch.cat([value[-1:], value[:-1]])
        elif key.startswith("roi_heads.box_predictor.bbox_pred.") and value.shape[0] == 4 * classes:
            value = torch.cat([value.new_zeros((4, *value.shape[1:])), value])
        elif key.startswith("roi_heads.") and ".mask_fcn_logits." in key and value.shape[0] == classes:
            value = torch.cat([value.new_zeros((1, *value.shape[1:])), value])
        out[key] = value
    return out


class ForeignDetectorError(ValueError):
    """A weights file of another detector family (a torchvision ResNet or MobileNet detector, ...): no key
    renaming makes it an HRNet detector, and its class count is beside the point."""


# backbone keys of other detector families (normalised: the leading "backbone." is gone) -> their name
_FOREIGN_BACKBONES = (
    (re.compile(r"^(?:body\.)?layer[234]\."), "ResNet"),  # HRNet has layer1 only, then transitions and stages
    (re.compile(r"^body\.\d+\."), "MobileNet"),  # torchvision's MobileNet bodies are numbered
)


def foreign_backbone(state: Mapping[str, Any]) -> tuple[str, str] | None:
    """(family, an example key) when the backbone of a normalised state dict is not an HRNet's, else None."""
    for key in state:
        for pattern, family in _FOREIGN_BACKBONES:
            if pattern.match(key):
                return family, key
    body = [k for k in state if k.startswith("body.")]
    if body and not any(k[len("body.") :].startswith(BODY_PREFIXES) for k in body):
        return "non-HRNet", body[0]
    return None


def convert_state_dict(
    state: Mapping[str, Tensor], layout: str | None = None, model_name: str | None = None
) -> dict[str, Tensor]:
    """Keys (and mmdet v2 class rows) of an official / mmdet / our state dict -> our detector's keys.

    ``state`` is normalised (:func:`hrnet.read_state_dict`); ``layout`` defaults to :func:`detect_layout`.
    Keys with no counterpart keep their name (the strict loader then reports them). A state dict whose
    backbone is not an HRNet (a torchvision ResNet detector, ...) raises :class:`ForeignDetectorError`
    saying what it is and that it is not ``model_name``.
    """
    foreign = foreign_backbone(state)
    if foreign is not None:
        family, key = foreign
        raise ForeignDetectorError(
            f"this file is a {family} detector (backbone key backbone.{key}), not {model_name or 'an HRNet detector'}: "
            f"hrnet det runs HRNet detectors only (a torchvision person detector goes to pose predict --detector)"
        )
    layout = layout or detect_layout(state)
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if layout == "hrnet":
            out["backbone." + key if key.startswith(("body.", "neck.")) else key] = value
            continue
        new = _rename(key)
        if new is None:
            log.debug("%s key %s has no counterpart here; kept as it is", layout, key)
        out[new or key] = value
    return _background_first(out) if layout == "mmdet" else out


class _Converter:
    """``model.convert_state_dict`` of a detector: converts a file's keys for the shared loader and lets a
    model built without a layout take the conventions of the layout it loads. An object rather than a
    closure, so that ``copy.deepcopy(model)`` gives the copy its own."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        name = getattr(self.model, "detector_name", None)
        if foreign_backbone(state) is not None:  # said before anything is changed on the model
            return convert_state_dict(state, model_name=name)
        layout = detect_layout(state)
        if follow_layout(self.model, layout):
            s = self.model.conventions.settings
            log.info(
                "a %s checkpoint: running as %s ran it (anchors %s, offset %.1f stride; input %s)",
                layout,
                s.source,
                s.anchor_style,
                s.anchor_offset,
                "BGR" if s.bgr else "RGB",
            )
        return convert_state_dict(state, layout, model_name=name)


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


def prepare(model: nn.Module, name: str | None = None) -> nn.Module:
    """Tell the shared loader (:func:`hrnet.load_weights`, :func:`hrnet.load_model`) how to read detection
    files into ``model``: the key conversion above (naming the detector ``name`` in its errors), the
    class-count output layers and their unit."""
    model.detector_name = name or getattr(model, "detector_name", None)
    model.convert_state_dict = _Converter(model)
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
    try:
        return load_weights(prepare(model), src, strict=strict, on_head_mismatch=on_head_mismatch)
    except ForeignDetectorError as err:
        if isinstance(src, (str, Path)):
            raise ForeignDetectorError(f"{src}: {err}") from err
        raise
