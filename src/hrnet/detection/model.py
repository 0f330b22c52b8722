"""Detectors on HRNetV2p: builders with torchvision's signatures, the name table, test settings, model cards.

Every model is a torchvision detector (``FasterRCNN``, ``MaskRCNN``, ``KeypointRCNN``, ``FCOS``,
``RetinaNet``) or is built from torchvision's parts (Cascade (Mask) R-CNN: a ``FasterRCNN`` with
:class:`~hrnet.detection.cascade.CascadeRoIHeads`; CenterNet: :class:`~hrnet.detection.centernet.CenterNet`
with torchvision's transform). All of them take and return labels ``1..num_classes`` (0 is background),
so data, evaluation and the API never care which framework is inside.

``num_classes`` always counts object classes *without* background (80 for COCO); the R-CNN builders add
the background row torchvision expects. ``layout`` picks whose conventions a model runs with (anchor and
point placement, RoIAlign, proposal counts, input colours; :mod:`hrnet.detection.conventions`): ours
(torchvision's) unless given, or those of the official / mmdet checkpoint it loads.

Names are ``<framework>_<backbone>``, e.g. ``cascade_mask_rcnn_hrnet_w32`` or ``fcos_hrnet_w18_small_v1``
(any backbone name of :func:`hrnet.create_model`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn
from torchvision.models.detection import FCOS, FasterRCNN, KeypointRCNN, MaskRCNN, RetinaNet
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

from hrnet.detection.backbone import LEVELS, HRNetV2pBackbone, HRNetV2Representation
from hrnet.detection.cascade import AgnosticBoxPredictor, CascadeRoIHeads
from hrnet.detection.centernet import CenterNet
from hrnet.detection.checkpoints import load_detection_weights, prepare
from hrnet.detection.conventions import (
    AppliedConventions,
    FrameworkAnchorGenerator,
    FrameworkRoIAlign,
    apply_conventions,
    pop_conventions,
    source_conventions,
)
from hrnet.detection.labels import default_classes
from hrnet.detection.transforms import MAX_SIZE, MIN_SIZE, DetTransform
from hrnet.models.card import ModelCard
from hrnet.models.weights import save_weights

Weights = bool | str | Path | None
RPN_LEVELS = [str(i) for i in range(LEVELS - 1)]  # RoI pooling reads strides 4..32, as FPN


# ---- shared pieces -------------------------------------------------------------------------------------
def _backbone(
    backbone: str,
    conv_stride: int,
    weights_backbone: Weights,
    norm_eval: bool,
    overrides: dict[str, Any] | None,
    kwargs: dict[str, Any],
) -> HRNetV2pBackbone:
    """The HRNetV2p backbone; ``neck_channels`` (popped from ``kwargs``, default the paper's 256) narrows the
    pyramid and so every head, for quick CPU runs."""
    return HRNetV2pBackbone(
        backbone,
        out_channels=kwargs.pop("neck_channels", 256),
        conv_stride=conv_stride,
        pretrained=weights_backbone or False,
        norm_eval=norm_eval,
        **(overrides or {}),
    )


def _pop_transform(
    kwargs: dict[str, Any], min_size: int | Sequence[int] = MIN_SIZE, max_size: int = MAX_SIZE
) -> DetTransform:
    """Our transform from the torchvision keywords ``min_size`` and ``max_size`` (removed from ``kwargs`` so
    torchvision's constructor does not see them); colours and statistics come from the conventions."""
    return DetTransform(kwargs.pop("min_size", min_size), kwargs.pop("max_size", max_size))


def _rpn_anchors(strides: Sequence[int]) -> FrameworkAnchorGenerator:
    """Scale 8 x strides 4..64 = 32..512 pixels, ratios 0.5 / 1 / 2 (mmdet's and the official anchors); placed
    by the conventions (:func:`~hrnet.detection.conventions.apply_conventions`)."""
    sizes = tuple((8 * s,) for s in strides)
    return FrameworkAnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(strides), strides)


def _roi_pool(size: int) -> FrameworkRoIAlign:
    return FrameworkRoIAlign(RPN_LEVELS, size)


def _load(model: nn.Module, weights: Weights, applied: AppliedConventions) -> nn.Module:
    """Every builder ends here: the conventions are applied, the model learns how detection files map onto
    it, then loads ``weights``."""
    apply_conventions(model, applied)
    prepare(model)
    if weights:
        load_detection_weights(model, weights)
    return model


class _OneBasedLabels:
    """For torchvision's one-stage detectors, whose class channels are indexed from 0: shift targets down
    by one and predictions up by one, so every detector here speaks labels ``1..num_classes``."""

    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None):
        if targets is not None:
            targets = [{**t, "labels": t["labels"] - 1} for t in targets]
        out = super().forward(images, targets)  # type: ignore[misc]
        if not self.training:  # type: ignore[attr-defined]
            out = [{**d, "labels": d["labels"] + 1} for d in out]
        return out


class HRNetFCOS(_OneBasedLabels, FCOS):
    """torchvision FCOS with one-based labels."""


class HRNetRetinaNet(_OneBasedLabels, RetinaNet):
    """torchvision RetinaNet with one-based labels."""


class CascadeRCNN(FasterRCNN):
    """A torchvision ``FasterRCNN`` whose RoI heads are the three-stage cascade (optionally with masks)."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        masks: bool = False,
        box_score_thresh: float = 0.05,
        box_nms_thresh: float = 0.5,
        box_detections_per_img: int = 100,
        box_batch_size_per_image: int = 512,
        box_positive_fraction: float = 0.25,
        **kwargs: Any,
    ) -> None:
        box_pool = kwargs.pop("box_roi_pool", None) or _roi_pool(7)
        super().__init__(
            backbone,
            num_classes=None,
            box_roi_pool=box_pool,
            box_head=nn.Identity(),
            box_predictor=nn.Identity(),
            **kwargs,
        )
        c, res = backbone.out_channels, box_pool.output_size[0]
        heads = [TwoMLPHead(c * res * res, 1024) for _ in range(3)]
        predictors = [AgnosticBoxPredictor(1024, num_classes) for _ in range(3)]
        mask_kw: dict[str, Any] = {}
        if masks:
            mask_kw = dict(
                mask_roi_pool=_roi_pool(14),
                mask_heads=[MaskRCNNHeads(c, (256, 256, 256, 256), 1) for _ in range(3)],
                mask_predictors=[MaskRCNNPredictor(256, 256, num_classes) for _ in range(3)],
            )
        self.roi_heads = CascadeRoIHeads(
            box_pool,
            heads,
            predictors,
            batch_size_per_image=box_batch_size_per_image,
            positive_fraction=box_positive_fraction,
            score_thresh=box_score_thresh,
            nms_thresh=box_nms_thresh,
            detections_per_img=box_detections_per_img,
            **mask_kw,
        )


# ---- builders (torchvision's keyword names: weights, progress, num_classes, weights_backbone) ---------------
def fasterrcnn_hrnet(
    backbone: str = "hrnet_w32",
    *,
    weights: Weights = None,
    progress: bool = True,
    num_classes: int = 80,
    weights_backbone: Weights = None,
    norm_eval: bool = True,
    backbone_overrides: dict[str, Any] | None = None,
    **kwargs: Any,
) -> FasterRCNN:
    """Faster R-CNN on HRNetV2p-Wx (Table 8): torchvision's RPN and 2-fc box head on the 5-level pyramid."""
    applied = pop_conventions("faster_rcnn", kwargs)
    transform = _pop_transform(kwargs)
    net = _backbone(backbone, 1, weights_backbone, norm_eval, backbone_overrides, kwargs)
    model = FasterRCNN(
        net,
        num_classes=num_classes + 1,
        rpn_anchor_generator=_rpn_anchors(net.strides),
        box_roi_pool=_roi_pool(7),
        **kwargs,
    )
    model.transform = transform
    return _load(model, weights, applied)


def maskrcnn_hrnet(
    backbone: str = "hrnet_w32",
    *,
    weights: Weights = None,
    progress: bool = True,
    num_classes: int = 80,
    weights_backbone: Weights = None,
    norm_eval: bool = True,
    backbone_overrides: dict[str, Any] | None = None,
    **kwargs: Any,
) -> MaskRCNN:
    """Mask R-CNN on HRNetV2p-Wx (Table 10): torchvision's 4-conv mask head and 28x28 masks."""
    applied = pop_conventions("mask_rcnn", kwargs)
    transform = _pop_transform(kwargs)
    net = _backbone(backbone, 1, weights_backbone, norm_eval, backbone_overrides, kwargs)
    model = MaskRCNN(
        net,
        num_classes=num_classes + 1,
        rpn_anchor_generator=_rpn_anchors(net.strides),
        box_roi_pool=_roi_pool(7),
        mask_roi_pool=_roi_pool(14),
        **kwargs,
    )
    model.transform = transform
    return _load(model, weights, applied)


def cascadercnn_hrnet(
    backbone: str = "hrnet_w32",
    *,
    weights: Weights = None,
    progress: bool = True,
    num_classes: int = 80,
    weights_backbone: Weights = None,
    norm_eval: bool = True,
    backbone_overrides: dict[str, Any] | None = None,
    masks: bool = False,
    **kwargs: Any,
) -> CascadeRCNN:
    """Cascade R-CNN on HRNetV2p-Wx (Table 8); ``masks=True`` gives Cascade Mask R-CNN (Table 10)."""
    applied = pop_conventions("cascade_mask_rcnn" if masks else "cascade_rcnn", kwargs)
    transform = _pop_transform(kwargs)
    net = _backbone(backbone, 1, weights_backbone, norm_eval, backbone_overrides, kwargs)
    model = CascadeRCNN(
        net,
        num_classes + 1,
        masks=masks,
        rpn_anchor_generator=_rpn_anchors(net.strides),
        **kwargs,
    )
    model.transform = transform
    return _load(model, weights, applied)


def cascademaskrcnn_hrnet(backbone: str = "hrnet_w32", **kwargs: Any) -> CascadeRCNN:
    """Cascade Mask R-CNN on HRNetV2p-Wx (Table 10): a mask head per stage, masks averaged at test time."""
    return cascadercnn_hrnet(backbone, masks=True, **kwargs)


def keypointrcnn_hrnet(
    backbone: str = "hrnet_w32",
    *,
    weights: Weights = None,
    progress: bool = True,
    num_classes: int = 1,
    weights_backbone: Weights = None,
    norm_eval: bool = True,
    backbone_overrides: dict[str, Any] | None = None,
    num_keypoints: int = 17,
    **kwargs: Any,
) -> KeypointRCNN:
    """Keypoint R-CNN on HRNetV2p-Wx (not in the paper; torchvision's keypoint head, 14x14 RoIs)."""
    applied = pop_conventions("keypoint_rcnn", kwargs)
    transform = _pop_transform(kwargs)
    net = _backbone(backbone, 1, weights_backbone, norm_eval, backbone_overrides, kwargs)
    model = KeypointRCNN(
        net,
        num_classes=num_classes + 1,
        rpn_anchor_generator=_rpn_anchors(net.strides),
        box_roi_pool=_roi_pool(7),
        keypoint_roi_pool=_roi_pool(14),
        num_keypoints=num_keypoints,
        **kwargs,
    )
    model.transform = transform
    return _load(model, weights, applied)


def fcos_hrnet(
    backbone: str = "hrnet_w32",
    *,
    weights: Weights = None,
    progress: bool = True,
    num_classes: int = 80,
    weights_backbone: Weights = None,
    norm_eval: bool = True,
    backbone_overrides: dict[str, Any] | None = None,
    **kwargs: Any,
) -> HRNetFCOS:
    """FCOS on HRNetV2p-Wx (Table 9): the stride-2 pyramid (strides 8..128) and torchvision's GN head.

    torchvision's head is the improved FCOS (GIoU loss, centre sampling, centre-ness on the regression
    tower, no per-level scales), not the plain variant the paper ran. Its points are the centres of one
    stride-sized anchor per place: at k*s (torchvision), or k*s + s/2 with ``anchor_offset=0.5`` (HRNet-FCOS,
    mmdet; ``layout='official'`` / ``'mmdet'`` also set those frameworks' BGR input).
    """
    applied = pop_conventions("fcos", kwargs)
    transform = _pop_transform(kwargs)
    net = _backbone(backbone, 2, weights_backbone, norm_eval, backbone_overrides, kwargs)
    anchors = FrameworkAnchorGenerator(tuple((s,) for s in net.strides), ((1.0,),) * LEVELS, net.strides)
    opts = dict(score_thresh=0.05, nms_thresh=0.5, detections_per_img=100, topk_candidates=1000)
    model = HRNetFCOS(net, num_classes, anchor_generator=anchors, **{**opts, **kwargs})
    model.transform = transform
    return _load(model, weights, applied)


def retinanet_hrnet(
    backbone: str = "hrnet_w32",
    *,
    weights: Weights = None,
    progress: bool = True,
    num_classes: int = 80,
    weights_backbone: Weights = None,
    norm_eval: bool = True,
    backbone_overrides: dict[str, Any] | None = None,
    **kwargs: Any,
) -> HRNetRetinaNet:
    """RetinaNet on HRNetV2p-Wx (not in the paper): P3-P7 from the stride-2 pyramid, 9 anchors per place."""
    applied = pop_conventions("retinanet", kwargs)
    transform = _pop_transform(kwargs)
    net = _backbone(backbone, 2, weights_backbone, norm_eval, backbone_overrides, kwargs)
    sizes = tuple((s, int(s * 2 ** (1 / 3)), int(s * 2 ** (2 / 3))) for s in (32, 64, 128, 256, 512))
    anchors = FrameworkAnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * LEVELS, net.strides)
    opts = dict(score_thresh=0.05, nms_thresh=0.5, detections_per_img=100, topk_candidates=1000)
    model = HRNetRetinaNet(net, num_classes, anchor_generator=anchors, **{**opts, **kwargs})
    model.transform = transform
    return _load(model, weights, applied)


def centernet_hrnet(
    backbone: str = "hrnet_w48",
    *,
    weights: Weights = None,
    progress: bool = True,
    num_classes: int = 80,
    weights_backbone: Weights = None,
    norm_eval: bool = False,
    backbone_overrides: dict[str, Any] | None = None,
    **kwargs: Any,
) -> CenterNet:
    """CenterNet (objects as points) on the 1/4 HRNetV2 representation; not the paper's CenterNet (see docs)."""
    applied = pop_conventions("centernet", kwargs)
    transform = _pop_transform(kwargs, 512, 512)
    net = HRNetV2Representation(
        backbone, pretrained=weights_backbone or False, norm_eval=norm_eval, **(backbone_overrides or {})
    )
    return _load(CenterNet(net, num_classes, transform, **kwargs), weights, applied)


# ---- the name table ------------------------------------------------------------------------------------
FRAMEWORKS: dict[str, Callable[..., nn.Module]] = {
    "faster_rcnn": fasterrcnn_hrnet,
    "mask_rcnn": maskrcnn_hrnet,
    "cascade_rcnn": cascadercnn_hrnet,
    "cascade_mask_rcnn": cascademaskrcnn_hrnet,
    "keypoint_rcnn": keypointrcnn_hrnet,
    "fcos": fcos_hrnet,
    "retinanet": retinanet_hrnet,
    "centernet": centernet_hrnet,
}
MASK_FRAMEWORKS = ("mask_rcnn", "cascade_mask_rcnn")


def parse_name(name: str) -> tuple[str, str]:
    """``'cascade_mask_rcnn_hrnet_w32'`` -> ``('cascade_mask_rcnn', 'hrnet_w32')``."""
    framework, sep, backbone = name.partition("_hrnet")
    if not sep or framework not in FRAMEWORKS:
        raise ValueError(
            f"unknown detection model {name!r}: expected <framework>_hrnet_..., framework one of "
            f"{sorted(FRAMEWORKS)} (e.g. faster_rcnn_hrnet_w32)"
        )
    return framework, "hrnet" + backbone


def list_detectors() -> list[str]:
    """The paper's detection configurations (Tables 7-10) by name; any other width works as well."""
    widths = {
        "faster_rcnn": (18, 32, 40, 48),
        "mask_rcnn": (18, 32, 40),
        "cascade_rcnn": (18, 32, 48),
        "cascade_mask_rcnn": (18, 32, 48),
        "fcos": (18, 32),
        "centernet": (48, 64),
        "retinanet": (32,),
        "keypoint_rcnn": (32,),
    }
    return [f"{f}_hrnet_w{w}" for f, ws in widths.items() for w in ws]


def build_detector(name: str, num_classes: int = 80, **kwargs: Any) -> nn.Module:
    """Build a named detector (see :func:`parse_name`); keywords go to the framework's builder."""
    framework, backbone = parse_name(name)
    return prepare(FRAMEWORKS[framework](backbone, num_classes=num_classes, **kwargs), name)  # errors name it


def framework_of(model: nn.Module) -> str:
    """The framework family a built model belongs to (for test settings and result fields)."""
    if isinstance(model, CascadeRCNN):
        return "cascade_mask_rcnn" if model.roi_heads.has_mask() else "cascade_rcnn"
    if isinstance(model, KeypointRCNN):
        return "keypoint_rcnn"
    if isinstance(model, MaskRCNN):
        return "mask_rcnn"
    if isinstance(model, FasterRCNN):
        return "faster_rcnn"
    if isinstance(model, FCOS):
        return "fcos"
    if isinstance(model, RetinaNet):
        return "retinanet"
    if isinstance(model, CenterNet):
        return "centernet"
    raise TypeError(f"not a detector of hrnet.detection: {type(model).__name__}")


def set_test_options(
    model: nn.Module,
    score_thresh: float | None = None,
    nms_thresh: float | None = None,
    detections_per_img: int | None = None,
) -> None:
    """Change the test-time score threshold, NMS IoU and detections per image of any built detector."""
    target = model.roi_heads if isinstance(model, FasterRCNN) else model
    if score_thresh is not None:
        target.score_thresh = score_thresh
    if nms_thresh is not None and not isinstance(model, CenterNet):  # CenterNet has no IoU NMS
        target.nms_thresh = nms_thresh
    if detections_per_img is not None:
        if isinstance(model, CenterNet):
            model.topk = detections_per_img
        else:
            target.detections_per_img = detections_per_img


# ---- model cards ---------------------------------------------------------------------------------------
def _builder_kwargs(cfg: Any, layout: str | None) -> dict[str, Any]:
    """Builder keywords of ``cfg``; the colour settings only where the config sets them (``None``: the
    layout's), ``layout`` only when one is fixed."""
    m, d = cfg.model, cfg.data
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in m.overrides.items()}
    kwargs = dict(
        m.options,
        backbone_overrides=overrides,
        norm_eval=m.norm_eval,
        min_size=tuple(d.min_size),
        max_size=d.max_size,
    )
    for name, value in (("bgr", m.bgr), ("image_mean", m.image_mean), ("image_std", m.image_std)):
        if value is not None:
            kwargs[name] = list(value) if isinstance(value, list) else value
    if layout is not None:
        kwargs["layout"] = layout
    return kwargs


def build_model(
    cfg: Any, *, num_classes: int = 80, keypoint_names: Sequence[str] = (), pretrained: bool = True
) -> nn.Module:
    """The detector of ``cfg`` (:class:`~hrnet.detection.config.DetConfig`) for ``num_classes`` classes
    (COCO's 80 unless given: training and evaluation pass their dataset's count).

    ``pretrained`` (training starts): the ImageNet backbone ``model.pretrained`` and then the detection
    weights ``model.weights`` (heads of another class count re-initialised); training runs with
    ``model.layout``'s conventions, ours (torchvision's) unless set, whatever layout ``model.weights`` has.
    Without ``pretrained`` and without ``model.layout`` the model follows the layout of the weights it is
    given next (evaluating an official or mmdet checkpoint). Test settings come from ``test``.
    """
    layout = cfg.model.layout if cfg.model.layout is not None or not pretrained else "hrnet"
    kwargs = _builder_kwargs(cfg, layout)
    if keypoint_names:
        kwargs["num_keypoints"] = len(keypoint_names)
    if pretrained and cfg.model.pretrained:
        kwargs["weights_backbone"] = cfg.model.pretrained
    model = build_detector(cfg.model.name, num_classes=num_classes, **kwargs)
    if pretrained and cfg.model.weights:
        load_detection_weights(model, cfg.model.weights, on_head_mismatch="reinit")
    t = cfg.test
    set_test_options(model, t.score_thresh, t.nms_thresh, t.detections_per_img)
    return model


def _conventions_card_fields(applied: AppliedConventions) -> dict[str, Any]:
    """The card fields of a detector's conventions: ``mean`` / ``std`` and the ``meta`` entries (``bgr``,
    ``layout``, the anchor placement, RoIAlign, proposal counts, cascade box coders)."""
    s = applied.settings
    return {"mean": list(s.image_mean), "std": list(s.image_std), "meta": {"bgr": s.bgr, **applied.meta()}}


def make_card(
    cfg: Any, *, class_names: Sequence[str], category_ids: Sequence[int], keypoint_names: Sequence[str] = ()
) -> ModelCard:
    """The card of a detector trained from ``cfg`` (:class:`~hrnet.detection.config.DetConfig`).

    ``meta`` keeps the dataset's category ids (head label i+1 -> ``category_ids[i]``) so results can be
    written in the file's ids, the transform (test size, colour order) and extra builder options, and the
    conventions the network was trained with (layout, anchor placement, RoIAlign, proposals); ``test`` the
    evaluation settings.
    """
    m, d, t = cfg.model, cfg.data, cfg.test
    if len(category_ids) != len(class_names):
        raise ValueError(f"model card: {len(class_names)} class names but {len(category_ids)} category ids")
    framework, _ = parse_name(m.name)
    applied = pop_conventions(framework, _builder_kwargs(cfg, m.layout or "hrnet"))
    fields = _conventions_card_fields(applied)
    return ModelCard(
        task="det",
        model=m.name,
        num_outputs=len(class_names),
        labels=list(class_names),
        overrides=dict(m.overrides),
        mean=fields["mean"],
        std=fields["std"],
        meta={
            "category_ids": [int(c) for c in category_ids],
            **fields["meta"],
            "options": dict(m.options),
            "min_size": int(d.min_size[-1]),
            "max_size": int(d.max_size),
            "keypoint_names": list(keypoint_names),
        },
        test={"score_thresh": t.score_thresh, "nms_thresh": t.nms_thresh, "detections_per_img": t.detections_per_img},
    )


def checkpoint_card(
    model: nn.Module,
    name: str,
    *,
    num_classes: int = 80,
    overrides: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    class_names: Sequence[str] | None = None,
    category_ids: Sequence[int] | None = None,
    source: dict[str, Any] | None = None,
) -> ModelCard:
    """The card of a built detector ``name`` holding converted weights (an official or mmdet checkpoint):
    its conventions as they are now (``model.conventions``), COCO's classes and ids unless given, the
    recipes' 800 / 1333 test size and score 0.05 / NMS 0.5 / 100 per image, the builder's ``overrides``
    (backbone) and other ``options`` (e.g. ``neck_channels``), and ``source`` (e.g. the URL and sha256 of the
    upstream file) as ``meta.source``."""
    default_names, default_ids = default_classes(num_classes)
    names = list(class_names) if class_names is not None else default_names
    ids = [int(i) for i in category_ids] if category_ids is not None else default_ids
    if len(names) != num_classes or len(ids) != num_classes:
        raise ValueError(f"model card of {name}: {len(names)} names and {len(ids)} ids for {num_classes} classes")
    fields = _conventions_card_fields(model.conventions)
    return ModelCard(
        task="det",
        model=name,
        num_outputs=num_classes,
        labels=names,
        overrides={k: list(v) if isinstance(v, tuple) else v for k, v in (overrides or {}).items()},
        mean=fields["mean"],
        std=fields["std"],
        meta={
            "category_ids": ids,
            **fields["meta"],
            "options": dict(options or {}),
            "min_size": MIN_SIZE,
            "max_size": MAX_SIZE,
            "keypoint_names": [],
            "source": dict(source or {}),
        },
        test={"score_thresh": 0.05, "nms_thresh": 0.5, "detections_per_img": 100},
    )


def convert_checkpoint(
    src: str | Path,
    out: str | Path,
    name: str,
    *,
    layout: str | None = None,
    num_classes: int = 80,
    source: dict[str, Any] | None = None,
    **builder_kwargs: Any,
) -> Path:
    """An official HRNet-Object-Detection / mmdet (or our own uncarded) checkpoint -> a carded
    ``.safetensors`` file that :class:`~hrnet.detection.Detector` and :func:`hrnet.load_model` rebuild as
    its framework ran it.

    The file is loaded strictly into ``name`` with ``num_classes`` classes (every key used); ``layout``
    defaults to the file's own (:func:`~hrnet.detection.checkpoints.detect_layout`), whose conventions the
    card records. ``builder_kwargs`` (e.g. ``backbone_overrides``) go to the builder and into the card.
    """
    if layout:
        builder_kwargs["layout"] = layout
    model = build_detector(name, num_classes=num_classes, **builder_kwargs)
    load_detection_weights(model, src)
    options = {k: v for k, v in builder_kwargs.items() if k not in ("backbone_overrides", "layout")}
    card = checkpoint_card(
        model,
        name,
        num_classes=num_classes,
        overrides=builder_kwargs.get("backbone_overrides"),
        options=options,
        source=source,
    )
    return save_weights(model, out, card=card)


def model_from_card(card: ModelCard) -> nn.Module:
    """An (uninitialised) detector of the architecture a card describes, with its conventions (layout,
    colour order and statistics, anchors, RoIAlign, proposals) and test settings. A card without
    conventions is one of ours from before they were recorded: torchvision's."""
    if card.task != "det":
        raise ValueError(f"model card is for task {card.task!r}, not detection")
    check_card(card)
    meta = card.meta
    framework, _ = parse_name(card.model)
    kwargs: dict[str, Any] = dict(meta.get("options", {}))
    kwargs.update(
        backbone_overrides={k: tuple(v) if isinstance(v, list) else v for k, v in card.overrides.items()},
        image_mean=card.mean,
        image_std=card.std,
        bgr=bool(meta.get("bgr", False)),
        layout=meta.get("layout", "hrnet"),
    )
    recorded = AppliedConventions(framework, source_conventions(framework)).meta()
    kwargs.update({k: meta[k] for k in recorded if k in meta and k != "layout"})
    if "min_size" in meta:
        kwargs.update(min_size=int(meta["min_size"]), max_size=int(meta["max_size"]))
    if framework == "keypoint_rcnn" and meta.get("keypoint_names"):
        kwargs["num_keypoints"] = len(meta["keypoint_names"])
    model = build_detector(card.model, num_classes=card.num_outputs, **kwargs)
    test = card.test
    set_test_options(model, test.get("score_thresh"), test.get("nms_thresh"), test.get("detections_per_img"))
    return model


def check_card(card: ModelCard) -> None:
    """Raise one ``ValueError`` naming what a detection card gets wrong before a network is built: a known
    architecture name, one category id per class, keypoint names for Keypoint R-CNN, both resize sizes."""
    framework, _ = parse_name(card.model)
    ids = card.meta.get("category_ids")
    if ids is not None and (not isinstance(ids, list) or len(ids) != card.num_outputs):
        raise ValueError(f"model card of {card.model}: meta.category_ids must list {card.num_outputs} ids")
    if framework == "keypoint_rcnn":
        card.require_meta("keypoint_names", list, "the names of the keypoints the keypoint head predicts")
    if ("min_size" in card.meta) != ("max_size" in card.meta):
        raise ValueError(f"model card of {card.model}: meta.min_size and meta.max_size go together")


def default_input_size(name: str) -> tuple[int, int]:
    """The (H, W) a detector's complexity is quoted at: the paper's 800 x 1333 test scale."""
    parse_name(name)
    return (MIN_SIZE, MAX_SIZE)
