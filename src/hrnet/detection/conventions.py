"""How each framework ran its HRNet detectors, and the pieces that let a torchvision detector run the same way.

Weights carry the conventions they were trained with: the colour order and normalisation of the input, where
the anchors (FCOS: the points) sit, how RoIs are pooled and how many proposals the test keeps. A checkpoint
run under another framework's conventions still loads and still predicts boxes, only worse (anchors half a
stride off move every proposal), so each source layout has its row here:

=========  ==============================  ======  =============================  ========================
layout     framework                       input   anchor centres (stride s)      RoIAlign
=========  ==============================  ======  =============================  ========================
hrnet      ours = torchvision              RGB     k*s (cells rounded to pixels)  sampling 2, not aligned
official   HRNet-Object-Detection          RGB     k*s + s/2 (inclusive-pixel     sampling 2, not aligned
           (mmdet v0.6), mmdet 1.x                 cells rounded, mmdet <= 1.x)
mmdet      mmdet 2.x / 3.x                 RGB     k*s (cells not rounded)        sampling 0 (adaptive),
                                                                                  aligned
=========  ==============================  ======  =============================  ========================

The R-CNN inputs are all RGB normalised with the ImageNet mean / std (the official configs read images with
PIL ``convert('RGB')`` and normalise with ``to_rgb=False`` and RGB-ordered statistics; mmdet's read BGR and
convert, ``to_rgb=True``). FCOS differs: HRNet-FCOS (maskrcnn-benchmark defaults) feeds BGR on 0-255 minus the
Caffe mean with std 1, mmdet's HRNet FCOS feeds BGR with BGR-ordered ImageNet statistics, and both put the
points at k*s + s//2 where torchvision's FCOS puts them at k*s.

The 0-255 statistics of the configs are written here divided by 255, because our transform takes images in
[0, 1]. Our own training keeps torchvision's conventions (layout ``hrnet``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import MultiScaleRoIAlign, roi_align

from hrnet.detection.cascade import BOX_CODER_WEIGHTS
from hrnet.io import IMAGENET_MEAN, IMAGENET_STD

LAYOUTS = ("hrnet", "official", "mmdet")
ANCHOR_STYLES = ("torchvision", "mmdet", "mmdet_legacy")

_BGR_IMAGENET_MEAN = tuple(reversed(IMAGENET_MEAN))
_BGR_IMAGENET_STD = tuple(reversed(IMAGENET_STD))
_CAFFE_MEAN = tuple(v / 255.0 for v in (102.9801, 115.9465, 122.7717))  # maskrcnn-benchmark INPUT.PIXEL_MEAN (BGR)
_CAFFE_STD = (1 / 255.0,) * 3  # INPUT.PIXEL_STD 1 on 0-255


@dataclass(frozen=True)
class SourceConventions:
    """What one framework fed its detectors and how it placed anchors and pooled RoIs.

    ``image_mean`` / ``image_std`` are in the order the network sees the channels, on images in [0, 1];
    ``anchor_offset`` is the fraction of the stride added to the anchor (FCOS: point) centres;
    ``rpn_*_nms_top_n_test`` are the proposals per level before NMS / per image after it, at test time.
    """

    layout: str = "hrnet"
    source: str = "hrnet (torchvision's detectors)"
    bgr: bool = False
    image_mean: tuple[float, ...] = IMAGENET_MEAN
    image_std: tuple[float, ...] = IMAGENET_STD
    anchor_style: str = "torchvision"
    anchor_offset: float = 0.0
    roi_sampling_ratio: int = 2
    roi_aligned: bool = False
    rpn_pre_nms_top_n_test: int = 2000
    rpn_post_nms_top_n_test: int = 2000
    box_coder_weights: tuple[tuple[float, ...], ...] = BOX_CODER_WEIGHTS

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"detection layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.anchor_style not in ANCHOR_STYLES:
            raise ValueError(f"anchor_style must be one of {ANCHOR_STYLES}, got {self.anchor_style!r}")
        if not 0.0 <= self.anchor_offset < 1.0:
            raise ValueError(f"anchor_offset is a fraction of the stride in [0, 1), got {self.anchor_offset}")
        if len(self.image_mean) != 3 or len(self.image_std) != 3:
            raise ValueError("image_mean and image_std need 3 values each")
        if self.roi_sampling_ratio < 0:
            raise ValueError(f"roi_sampling_ratio must be >= 0 (0: adaptive), got {self.roi_sampling_ratio}")


# which settings each family of detectors has (the rest do not apply to it)
FAMILY_FIELDS: dict[str, tuple[str, ...]] = {
    "rcnn": (
        "bgr",
        "image_mean",
        "image_std",
        "anchor_style",
        "anchor_offset",
        "roi_sampling_ratio",
        "roi_aligned",
        "rpn_pre_nms_top_n_test",
        "rpn_post_nms_top_n_test",
    ),
    "cascade": (),  # filled below: rcnn + box_coder_weights
    "anchors": ("bgr", "image_mean", "image_std", "anchor_style", "anchor_offset"),  # FCOS, RetinaNet
    "plain": ("bgr", "image_mean", "image_std"),  # CenterNet
}
FAMILY_FIELDS["cascade"] = (*FAMILY_FIELDS["rcnn"], "box_coder_weights")

_RCNN = {
    "hrnet": SourceConventions(),
    "official": SourceConventions(
        layout="official",
        source="HRNet-Object-Detection (mmdet v0.6 fork) / mmdet 1.x",
        anchor_style="mmdet_legacy",
        anchor_offset=0.5,
    ),
    "mmdet": SourceConventions(
        layout="mmdet",
        source="mmdet 2.x / 3.x",
        anchor_style="mmdet",
        roi_sampling_ratio=0,
        roi_aligned=True,
        rpn_pre_nms_top_n_test=1000,
        rpn_post_nms_top_n_test=1000,
    ),
}
_FCOS = {
    "hrnet": SourceConventions(),
    "official": SourceConventions(
        layout="official",
        source="HRNet-FCOS (maskrcnn-benchmark)",
        bgr=True,
        image_mean=_CAFFE_MEAN,
        image_std=_CAFFE_STD,
        anchor_style="mmdet",
        anchor_offset=0.5,
    ),
    "mmdet": SourceConventions(
        layout="mmdet",
        source="mmdet 2.x / 3.x FCOS",
        bgr=True,
        image_mean=_BGR_IMAGENET_MEAN,
        image_std=_BGR_IMAGENET_STD,
        anchor_style="mmdet",
        anchor_offset=0.5,
    ),
}
_TABLES = {"faster_rcnn": _RCNN, "mask_rcnn": _RCNN, "cascade_rcnn": _RCNN, "cascade_mask_rcnn": _RCNN, "fcos": _FCOS}
FRAMEWORK_FAMILY = {
    "faster_rcnn": "rcnn",
    "mask_rcnn": "rcnn",
    "keypoint_rcnn": "rcnn",
    "cascade_rcnn": "cascade",
    "cascade_mask_rcnn": "cascade",
    "fcos": "anchors",
    "retinanet": "anchors",
    "centernet": "plain",
}


def source_conventions(framework: str, layout: str = "hrnet") -> SourceConventions:
    """The row of ``layout`` for a framework (``faster_rcnn``, ``fcos``, ...). Frameworks without official or
    mmdet HRNet checkpoints (Keypoint R-CNN, RetinaNet, CenterNet) have our row only."""
    if layout not in LAYOUTS:
        raise ValueError(f"detection layout must be one of {LAYOUTS}, got {layout!r}")
    table = _TABLES.get(framework, {"hrnet": _RCNN["hrnet"]})
    if layout not in table:
        raise ValueError(f"{framework}: no {layout!r} checkpoints exist; only layout 'hrnet' applies")
    return table[layout]


@dataclass(frozen=True)
class AppliedConventions:
    """What a built detector runs with (``model.conventions``): its framework, the settings, those given
    explicitly, and whether loading another framework's checkpoint may switch the rest to that framework's."""

    framework: str
    settings: SourceConventions
    explicit: frozenset[str] = frozenset()
    follow_weights: bool = False

    def meta(self) -> dict[str, Any]:
        """The card entries of these settings (plain data; colours and statistics are the card's ``bgr``,
        ``mean`` and ``std``): the builder keywords that rebuild them."""
        s = self.settings
        out: dict[str, Any] = {"layout": s.layout}
        for name in FAMILY_FIELDS[FRAMEWORK_FAMILY[self.framework]]:
            if name in ("bgr", "image_mean", "image_std"):
                continue
            value = getattr(s, name)
            out[name] = [list(w) for w in value] if name == "box_coder_weights" else value
        return out


def pop_conventions(framework: str, kwargs: dict[str, Any]) -> AppliedConventions:
    """Take ``layout`` and the convention keywords of ``framework`` out of builder ``kwargs``.

    Without ``layout`` the model runs with our (torchvision's) conventions and follows the weights it later
    loads (:func:`follow_layout`); settings given explicitly always stay.
    """
    layout = kwargs.pop("layout", None)
    fields = FAMILY_FIELDS[FRAMEWORK_FAMILY[framework]]
    given = {name: kwargs.pop(name) for name in fields if name in kwargs}
    base = source_conventions(framework, layout or "hrnet")
    settings = _replace(base, given)
    return AppliedConventions(framework, settings, frozenset(given), follow_weights=layout is None)


def _replace(base: SourceConventions, given: Mapping[str, Any]) -> SourceConventions:
    """``base`` with the ``given`` settings, normalised to tuples / plain numbers."""
    clean: dict[str, Any] = {}
    for name, value in given.items():
        if name in ("image_mean", "image_std"):
            value = tuple(float(v) for v in value)
        elif name == "box_coder_weights":
            value = tuple(tuple(float(v) for v in w) for w in value)
        elif name == "anchor_offset":
            value = float(value)
        elif name in ("roi_sampling_ratio", "rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_test"):
            value = int(value)
        elif name in ("bgr", "roi_aligned"):
            value = bool(value)
        clean[name] = value
    return dataclasses.replace(base, **clean)


def apply_conventions(model: nn.Module, applied: AppliedConventions) -> None:
    """Set a built detector's transform, anchors, RoI pooling, proposal counts and cascade box coders to
    ``applied`` and remember it as ``model.conventions``."""
    s = applied.settings
    transform = getattr(model, "transform", None)
    if transform is not None:
        transform.bgr = s.bgr
        transform.image_mean = list(s.image_mean)
        transform.image_std = list(s.image_std)
    rpn = getattr(model, "rpn", None)
    generator = rpn.anchor_generator if rpn is not None else getattr(model, "anchor_generator", None)
    if isinstance(generator, FrameworkAnchorGenerator):
        generator.style, generator.offset = s.anchor_style, s.anchor_offset
    if rpn is not None:
        rpn._pre_nms_top_n["testing"] = s.rpn_pre_nms_top_n_test
        rpn._post_nms_top_n["testing"] = s.rpn_post_nms_top_n_test
    heads = getattr(model, "roi_heads", None)
    if heads is not None:
        for name in ("box_roi_pool", "mask_roi_pool", "keypoint_roi_pool"):
            pool = getattr(heads, name, None)
            if isinstance(pool, FrameworkRoIAlign):
                pool.sampling_ratio, pool.aligned = s.roi_sampling_ratio, s.roi_aligned
        if hasattr(heads, "set_box_coder_weights"):
            heads.set_box_coder_weights(s.box_coder_weights)
    model.conventions = applied


def follow_layout(model: nn.Module, layout: str) -> bool:
    """Called when ``model`` loads a checkpoint of ``layout``: a model built without a layout takes that
    framework's conventions for every setting not given explicitly. Returns whether anything changed."""
    applied: AppliedConventions | None = getattr(model, "conventions", None)
    if applied is None or not applied.follow_weights or applied.settings.layout == layout:
        return False
    try:
        target = source_conventions(applied.framework, layout)
    except ValueError:
        return False  # no such checkpoints for this framework: loading will say what does not fit
    keep = {name: getattr(applied.settings, name) for name in applied.explicit}
    apply_conventions(model, dataclasses.replace(applied, settings=_replace(target, keep)))
    return True


# ---- anchors and points -------------------------------------------------------------------------------
def cell_anchors(
    sizes: Sequence[float], aspect_ratios: Sequence[float], stride: int, style: str, offset: float
) -> Tensor:
    """The anchors of one grid cell (float32, x1 y1 x2 y2, continuous pixels), ratio-major as every framework.

    ``torchvision``: centred at 0 and rounded to whole pixels, then moved by ``offset * stride``;
    ``mmdet`` (mmdet >= 2 ``AnchorGenerator``, ``center_offset``): centred at ``offset * stride``, not rounded;
    ``mmdet_legacy`` (mmdet <= 1.x): corners in inclusive pixels around the pixel centre
    ``offset * stride - 0.5`` (the default 0.5 gives mmdet's ``0.5 * (stride - 1)``), rounded, then the
    exclusive right / bottom edge (+1) that continuous coordinates use.
    """
    size = torch.as_tensor(sizes, dtype=torch.float32)
    h_ratios = torch.sqrt(torch.as_tensor(aspect_ratios, dtype=torch.float32))
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * size[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * size[None, :]).reshape(-1)
    centre = offset * stride
    if style == "torchvision":
        return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round() + centre
    if style == "mmdet":
        return torch.stack([centre - 0.5 * ws, centre - 0.5 * hs, centre + 0.5 * ws, centre + 0.5 * hs], dim=1)
    if style == "mmdet_legacy":
        c = centre - 0.5
        cells = torch.stack([c - 0.5 * (ws - 1), c - 0.5 * (hs - 1), c + 0.5 * (ws - 1), c + 0.5 * (hs - 1)], dim=1)
        return cells.round() + torch.tensor([0.0, 0.0, 1.0, 1.0])
    raise ValueError(f"anchor_style must be one of {ANCHOR_STYLES}, got {style!r}")


class FrameworkAnchorGenerator(AnchorGenerator):
    """torchvision's ``AnchorGenerator`` that can place anchors as mmdet (>= 2 or <= 1.x) did.

    ``style='torchvision'`` with ``offset=0`` is torchvision's generator unchanged: strides are inferred from
    the image and feature sizes (image // grid). The other styles use the pyramid's configured ``strides``, as
    mmdet does (they differ for the coarsest level when the padded image is not a multiple of its stride).
    """

    def __init__(
        self,
        sizes: Sequence[Sequence[float]],
        aspect_ratios: Sequence[Sequence[float]],
        strides: Sequence[int],
        style: str = "torchvision",
        offset: float = 0.0,
    ) -> None:
        super().__init__(tuple(tuple(s) for s in sizes), tuple(tuple(a) for a in aspect_ratios))
        if len(strides) != len(self.sizes):
            raise ValueError(f"anchors: {len(self.sizes)} levels of sizes but {len(strides)} strides")
        self.strides = tuple(int(s) for s in strides)
        self.style = style
        self.offset = float(offset)

    def level_anchors(self, level: int, grid: Sequence[int], stride: int, device: torch.device) -> Tensor:
        """All anchors of one level (float32): the cell anchors shifted to every grid cell, row by row."""
        cells = cell_anchors(self.sizes[level], self.aspect_ratios[level], stride, self.style, self.offset)
        cells = cells.to(device)
        ys = torch.arange(int(grid[0]), device=device, dtype=torch.float32) * stride
        xs = torch.arange(int(grid[1]), device=device, dtype=torch.float32) * stride
        sy, sx = torch.meshgrid(ys, xs, indexing="ij")
        shifts = torch.stack([sx.reshape(-1), sy.reshape(-1)] * 2, dim=1)
        return (shifts[:, None, :] + cells[None, :, :]).reshape(-1, 4)

    def forward(self, image_list: ImageList, feature_maps: list[Tensor]) -> list[Tensor]:
        if self.style == "torchvision":
            anchors = super().forward(image_list, feature_maps)
            if self.offset == 0.0:
                return anchors
            size = image_list.tensors.shape[-2:]
            shift = torch.cat(
                [
                    torch.tensor([size[1] // f.shape[-1], size[0] // f.shape[-2]] * 2, dtype=anchors[0].dtype)
                    .mul(self.offset)
                    .expand(f.shape[-2] * f.shape[-1] * len(cells), 4)
                    for f, cells in zip(feature_maps, self.cell_anchors)
                ]
            ).to(anchors[0].device)
            return [a + shift for a in anchors]
        if len(feature_maps) != len(self.strides):
            raise ValueError(f"anchors: {len(feature_maps)} feature maps for {len(self.strides)} strides")
        dtype, device = feature_maps[0].dtype, feature_maps[0].device
        levels = [
            self.level_anchors(i, f.shape[-2:], s, device) for i, (f, s) in enumerate(zip(feature_maps, self.strides))
        ]
        all_levels = torch.cat(levels).to(dtype)
        return [all_levels for _ in image_list.image_sizes]


# ---- RoI pooling ---------------------------------------------------------------------------------------
class FrameworkRoIAlign(MultiScaleRoIAlign):
    """torchvision's ``MultiScaleRoIAlign`` with mmcv's ``aligned=True`` (half-pixel offset) as an option.

    Levels are chosen by the same rule either way (FPN's, which equals mmdet's ``finest_scale=56``); scales
    are the feature / image size ratios rounded to powers of two, as torchvision infers them.
    """

    def __init__(
        self, featmap_names: list[str], output_size: int, sampling_ratio: int = 2, aligned: bool = False
    ) -> None:
        super().__init__(featmap_names, output_size, sampling_ratio)
        self.aligned = aligned

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        if not self.aligned:
            return super().forward(x, boxes, image_shapes)
        feats = [v for k, v in x.items() if k in self.featmap_names]
        height = max(s[0] for s in image_shapes)
        scales = [2.0 ** round(math.log2(f.shape[-2] / height)) for f in feats]
        rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], dim=1) for i, b in enumerate(boxes)], dim=0)
        k_min, k_max = -math.log2(scales[0]), -math.log2(scales[-1])
        area = (rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2])
        level = torch.floor(self.canonical_level + torch.log2(area.sqrt() / self.canonical_scale) + 1e-6)
        level = (level.clamp(min=k_min, max=k_max) - k_min).to(torch.int64)
        out = feats[0].new_zeros((len(rois), feats[0].shape[1], *self.output_size))
        for i, (feat, scale) in enumerate(zip(feats, scales)):
            idx = torch.where(level == i)[0]
            if len(idx):
                pooled = roi_align(feat, rois[idx], self.output_size, scale, self.sampling_ratio, aligned=True)
                out[idx] = pooled.to(out.dtype)
        return out

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, aligned={self.aligned})"
