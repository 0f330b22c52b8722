"""Anchors, RPN proposals and FCOS points of a converted checkpoint are those of its own framework.

The references are small transcriptions, written here from the upstream formulas, of:
- HRNet-Object-Detection / mmdet <= 1.x ``AnchorGenerator`` (``ctr = 0.5 * (base - 1)``; corners
  ``ctr -+ 0.5 * (w - 1)`` rounded; inclusive pixels) and its RPN ``get_bboxes_single`` (per level: sigmoid,
  top 2000, ``delta2bbox`` with the +1 widths and clipping to W - 1, NMS 0.7 with +1 areas; then the 2000 best);
- mmdet 2.x ``AnchorGenerator`` (``center_offset`` 0, corners not rounded) and its RPN (per level top 1000,
  ``delta2bbox`` without +1, clipping to W, NMS 0.7 per level, the 1000 best);
- HRNet-FCOS ``compute_locations_per_level`` and mmdet 2.x FCOS ``_get_points_single`` (``k * s + s // 2``);
- torchvision's own ``AnchorGenerator`` / ``RegionProposalNetwork`` for our layout.
The RPN head of the reference is run from the file's tensors by their upstream names, on our pyramid's
features, so both sides share the random weights. Inclusive corners x2, y2 are x2 + 1, y2 + 1 in the
continuous coordinates torchvision (and we) use.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.ops import roi_align

from hrnet.detection import build_detector, load_detection_weights
from hrnet.io import IMAGENET_MEAN, IMAGENET_STD

from .conftest import TINY_BACKBONE
from .test_det_checkpoints import W18_SMALL_V1, K, checkpoint_shapes, fill

STRIDES = (4, 8, 16, 32, 64)
RATIOS = (0.5, 1.0, 2.0)
PIXEL = torch.tensor([0.0, 0.0, 1.0, 1.0])  # inclusive -> continuous corners
TOL = 0.01  # px


def upstream_anchors(source: str, grids: list[tuple[int, int]]) -> torch.Tensor:
    """All anchors of the five levels as ``source``'s generator makes them (continuous coordinates)."""
    out = []
    for stride, (h, w) in zip(STRIDES, grids):
        base = stride  # anchor_base_sizes = anchor_strides; anchor_scales = [8]
        scales, ratios = torch.tensor([8.0]), torch.tensor(RATIOS)
        h_ratios = torch.sqrt(ratios)
        w_ratios = 1 / h_ratios
        ws = (base * w_ratios[:, None] * scales[None, :]).view(-1)
        hs = (base * h_ratios[:, None] * scales[None, :]).view(-1)
        if source == "official":
            ctr = 0.5 * (base - 1)
            corners = [ctr - 0.5 * (ws - 1), ctr - 0.5 * (hs - 1), ctr + 0.5 * (ws - 1), ctr + 0.5 * (hs - 1)]
            cells = torch.stack(corners, dim=-1).round() + PIXEL
        else:  # mmdet 2.x, center_offset = 0
            cells = torch.stack([-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs], dim=-1)
        shift_x, shift_y = torch.arange(0, w) * stride, torch.arange(0, h) * stride
        xx, yy = shift_x.repeat(len(shift_y)), shift_y.view(-1, 1).repeat(1, len(shift_x)).view(-1)
        shifts = torch.stack([xx, yy, xx, yy], dim=-1).float()
        out.append((cells[None] + shifts[:, None]).view(-1, 4))
    return torch.cat(out)


def _nms(boxes: torch.Tensor, scores: torch.Tensor, thr: float, plus_one: float) -> torch.Tensor:
    """Greedy NMS (suppress IoU > thr); ``plus_one`` = 1 for mmdet <= 1.x inclusive areas."""
    x1, y1, x2, y2 = boxes.t()
    area = (x2 - x1 + plus_one) * (y2 - y1 + plus_one)
    order = scores.argsort(descending=True)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        iw = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1) + plus_one).clamp(min=0)
        ih = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1) + plus_one).clamp(min=0)
        inter = iw * ih
        suppressed |= inter / (area[i] + area - inter) > thr
    return torch.tensor(keep, dtype=torch.int64)


def upstream_proposals(source: str, cls: list, reg: list, anchors: list, size: tuple[int, int]) -> torch.Tensor:
    """The RPN proposals of one image (continuous coordinates), best first, as ``source`` computes them from
    per-level objectness (A, H, W) and deltas (4A, H, W) and that source's own anchors."""
    legacy = source == "official"
    nms_pre, keep_max = (2000, 2000) if legacy else (1000, 1000)
    h, w = size
    levels, level_scores = [], []
    for c, r, a in zip(cls, reg, anchors):
        scores = c.permute(1, 2, 0).reshape(-1).sigmoid()
        deltas = r.permute(1, 2, 0).reshape(-1, 4)
        if legacy:
            a = a - PIXEL  # the generator's inclusive corners
        if len(scores) > nms_pre:
            scores, idx = scores.topk(nms_pre)
            deltas, a = deltas[idx], a[idx]
        one = 1.0 if legacy else 0.0
        px, py = (a[:, 0] + a[:, 2]) * 0.5, (a[:, 1] + a[:, 3]) * 0.5
        pw, ph = a[:, 2] - a[:, 0] + one, a[:, 3] - a[:, 1] + one
        clip = abs(math.log(16 / 1000))
        dw, dh = deltas[:, 2].clamp(-clip, clip), deltas[:, 3].clamp(-clip, clip)
        gx, gy = px + pw * deltas[:, 0], py + ph * deltas[:, 1]
        gw, gh = pw * dw.exp(), ph * dh.exp()
        half = 0.5 * one
        boxes = torch.stack([gx - gw * 0.5 + half, gy - gh * 0.5 + half, gx + gw * 0.5 - half, gy + gh * 0.5 - half], 1)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w - one)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h - one)
        if not legacy:  # min_bbox_size 0: boxes of zero width or height go
            ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            boxes, scores = boxes[ok], scores[ok]
        keep = _nms(boxes, scores, 0.7, one)
        levels.append(boxes[keep][:keep_max] + (PIXEL if legacy else 0))
        level_scores.append(scores[keep][:keep_max])
    boxes, scores = torch.cat(levels), torch.cat(level_scores)
    order = scores.argsort(descending=True)[:keep_max]
    return boxes[order]


def _file(source: str, seed: int = 0) -> dict:
    """A small Faster R-CNN checkpoint in ``source``'s layout (random weights, small RPN deltas)."""
    state = fill(checkpoint_shapes("faster_rcnn", source, W18_SMALL_V1, classes=K, neck=16), seed=seed)
    state["rpn_head.rpn_reg.weight"] *= 0.3
    return {"meta": {}, "state_dict": state}


def _rpn_head(state: dict, features: list[torch.Tensor]) -> tuple[list, list]:
    """The upstream RPNHead forward by key name: a shared 3x3 conv + ReLU, then 1x1 objectness and deltas."""

    def conv(name: str, x: torch.Tensor) -> torch.Tensor:
        weight = state[f"rpn_head.{name}.weight"]
        return F.conv2d(x, weight, state[f"rpn_head.{name}.bias"], padding=weight.shape[-1] // 2)

    shared = [F.relu(conv("rpn_conv", f)) for f in features]
    return [conv("rpn_cls", t)[0] for t in shared], [conv("rpn_reg", t)[0] for t in shared]


IMAGE = ImageList(torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0)), [(90, 120)])


@pytest.mark.parametrize("source", ["official", "mmdet"])
def test_rpn_anchors_and_proposals_are_the_checkpoint_frameworks(source):
    ckpt = _file(source)
    model = build_detector(
        "faster_rcnn_hrnet_w18_small_v1", num_classes=K, backbone_overrides=TINY_BACKBONE, neck_channels=16
    ).eval()
    load_detection_weights(model, ckpt)  # built without a layout: it takes the file's
    assert model.conventions.settings.layout == source
    with torch.no_grad():
        features = model.backbone(IMAGE.tensors)
        maps = list(features.values())
        anchors = model.rpn.anchor_generator(IMAGE, maps)[0]
        proposals = model.rpn(IMAGE, features)[0][0]
        cls, reg = _rpn_head(ckpt["state_dict"], maps)
    grids = [tuple(m.shape[-2:]) for m in maps]
    expected = upstream_anchors(source, grids)
    assert anchors.shape == expected.shape
    assert (anchors - expected).abs().max() < TOL
    per_level = expected.split([3 * h * w for h, w in grids])
    want = upstream_proposals(source, cls, reg, list(per_level), IMAGE.image_sizes[0])
    assert 100 < len(want) == len(proposals)
    # the same boxes, best first (boxes of equal score may come in either order): each within 0.01 px of one
    gap = (proposals[:, None, :] - want[None, :, :]).abs().amax(-1)
    assert gap.min(1).values.max() < TOL and gap.min(0).values.max() < TOL
    assert (gap.diagonal() < TOL).float().mean() > 0.99

    # torchvision's own anchors sit half a stride up-left of the official ones (2 .. 32 px on P2..P6) and
    # within 0.5 px of mmdet 2.x's (torchvision rounds the cell corners)
    theirs = AnchorGenerator(tuple((8 * s,) for s in STRIDES), (RATIOS,) * 5)(IMAGE, maps)[0]
    gap = (expected - theirs).split([3 * h * w for h, w in grids])
    if source == "official":
        for stride, g in zip(STRIDES[:4], gap[:4]):  # P6: torchvision infers stride 96 // 1 from the 96-row image
            centre = (g[:, :2] + g[:, 2:]) / 2
            torch.testing.assert_close(centre, torch.full_like(centre, stride / 2))
    else:
        assert max(float(g[:, :2].abs().max()) for g in gap[:4]) <= 0.5


def test_our_layout_is_torchvisions():
    model = build_detector(
        "faster_rcnn_hrnet_w18_small_v1", num_classes=K, backbone_overrides=TINY_BACKBONE, neck_channels=16
    ).eval()
    assert model.conventions.settings.layout == "hrnet"
    torchvision_rpn = RegionProposalNetwork(
        AnchorGenerator(tuple((8 * s,) for s in STRIDES), (RATIOS,) * 5),
        model.rpn.head,
        0.7,
        0.3,
        256,
        0.5,
        dict(training=2000, testing=2000),
        dict(training=2000, testing=2000),
        0.7,
    ).eval()
    with torch.no_grad():
        features = model.backbone(IMAGE.tensors)
        ours = model.rpn.anchor_generator(IMAGE, list(features.values()))[0]
        theirs = torchvision_rpn.anchor_generator(IMAGE, list(features.values()))[0]
        assert torch.equal(ours, theirs)
        torch.testing.assert_close(model.rpn(IMAGE, features)[0][0], torchvision_rpn(IMAGE, features)[0][0])


def upstream_points(grids: list[tuple[int, int]], strides: tuple[int, ...]) -> torch.Tensor:
    """HRNet-FCOS ``compute_locations_per_level`` (and mmdet 2.x FCOS points): ``k * s + s // 2``."""
    out = []
    for (h, w), s in zip(grids, strides):
        shifts_x = torch.arange(0, w * s, step=s, dtype=torch.float32)
        shifts_y = torch.arange(0, h * s, step=s, dtype=torch.float32)
        shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
        out.append(torch.stack((shift_x.reshape(-1), shift_y.reshape(-1)), dim=1) + s // 2)
    return torch.cat(out)


@pytest.mark.parametrize("layout", ["official", "mmdet", "hrnet"])
def test_fcos_points(layout):
    model = build_detector(
        "fcos_hrnet_w18_small_v1", num_classes=K, backbone_overrides=TINY_BACKBONE, neck_channels=32, layout=layout
    ).eval()
    image = ImageList(torch.rand(1, 3, 128, 256), [(128, 250)])
    with torch.no_grad():
        maps = list(model.backbone(image.tensors).values())
    anchors = model.anchor_generator(image, maps)[0]
    points = (anchors[:, :2] + anchors[:, 2:]) / 2
    grids = [tuple(m.shape[-2:]) for m in maps]
    strides = (8, 16, 32, 64, 128)
    sizes = torch.cat([torch.full((h * w,), float(s)) for (h, w), s in zip(grids, strides)])
    torch.testing.assert_close(anchors[:, 2] - anchors[:, 0], sizes)  # the size ranges FCOS assigns by
    if layout == "hrnet":  # torchvision's FCOS: the centres of its anchors, k * s
        expected = AnchorGenerator(tuple((s,) for s in strides), ((1.0,),) * 5)(image, maps)[0]
        assert torch.equal(anchors, expected)
        return
    assert (points - upstream_points(grids, strides)).abs().max() < TOL
    # both FCOS sources feed BGR: HRNet-FCOS 0-255 minus the Caffe mean, mmdet BGR-ordered ImageNet statistics
    t = model.transform
    assert t.bgr
    if layout == "official":
        torch.testing.assert_close(
            torch.tensor(t.image_mean) * 255, torch.tensor([102.9801, 115.9465, 122.7717]), rtol=0, atol=1e-4
        )
        torch.testing.assert_close(torch.tensor(t.image_std) * 255, torch.ones(3), rtol=0, atol=1e-6)
    else:
        assert t.image_mean == list(reversed(IMAGENET_MEAN)) and t.image_std == list(reversed(IMAGENET_STD))


def test_rcnn_conventions_per_layout_and_explicit_settings_stay():
    """RoIAlign and proposal counts as each source's config; the cascade's stage-3 box coder from its stds;
    a setting given explicitly is kept when the model follows a file's layout."""
    cascade = dict(num_classes=K, backbone_overrides=TINY_BACKBONE, neck_channels=16)
    m = build_detector("cascade_rcnn_hrnet_w18_small_v1", layout="mmdet", **cascade)
    pool = m.roi_heads.box_roi_pool
    assert (pool.sampling_ratio, pool.aligned) == (0, True)
    assert m.rpn._pre_nms_top_n["testing"] == m.rpn._post_nms_top_n["testing"] == 1000
    assert m.roi_heads.box_coders[2].weights == pytest.approx((1 / 0.033, 1 / 0.033, 1 / 0.067, 1 / 0.067))
    m = build_detector("cascade_rcnn_hrnet_w18_small_v1", layout="official", **cascade)
    assert (m.roi_heads.box_roi_pool.sampling_ratio, m.roi_heads.box_roi_pool.aligned) == (2, False)
    assert m.rpn._post_nms_top_n["testing"] == 2000
    m = build_detector("faster_rcnn_hrnet_w18_small_v1", bgr=True, roi_sampling_ratio=4, **cascade)
    load_detection_weights(m, _file("mmdet"))
    s = m.conventions.settings
    assert (s.layout, s.anchor_style, s.roi_aligned) == ("mmdet", "mmdet", True)
    assert s.bgr and s.roi_sampling_ratio == 4 and m.transform.bgr  # the user's own settings
    with pytest.raises(ValueError, match="layout"):
        build_detector("faster_rcnn_hrnet_w18_small_v1", layout="detectron2", **cascade)
    with pytest.raises(ValueError, match="no 'official' checkpoints"):
        build_detector("retinanet_hrnet_w18_small_v1", layout="official", **cascade)


def test_aligned_roi_align_matches_torchvision_roi_align():
    """The aligned pooling (mmdet 2.x) is torchvision's ``roi_align(aligned=True)`` on the FPN level of each box."""
    model = build_detector(
        "faster_rcnn_hrnet_w18_small_v1",
        layout="mmdet",
        **dict(num_classes=K, backbone_overrides=TINY_BACKBONE, neck_channels=16),
    )
    with torch.no_grad():
        features = model.backbone(IMAGE.tensors)
    boxes = torch.tensor([[4.0, 6.0, 30.0, 40.0], [0.0, 0.0, 150.0, 100.0]])  # sqrt(area) 29.7 -> P2, 122 -> P3
    pooled = model.roi_heads.box_roi_pool(features, [boxes], IMAGE.image_sizes)
    rois = torch.cat([torch.zeros(2, 1), boxes], 1)
    p2 = roi_align(features["0"], rois[:1], 7, 1 / 4, 0, aligned=True)
    p3 = roi_align(features["1"], rois[1:], 7, 1 / 8, 0, aligned=True)
    torch.testing.assert_close(pooled, torch.cat([p2, p3]))
