"""Detector building blocks: the official HRFPN pyramid, norm_eval, ImageNet init, cascade scoring, CenterNet."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hrnet
from hrnet.detection import HRNetV2pBackbone, build_detector, cascadercnn_hrnet, list_detectors
from hrnet.detection.cascade import CascadeRoIHeads
from hrnet.detection.centernet import CenterNet, gaussian_radius
from hrnet.detection.model import framework_of, parse_name
from hrnet.detection.transforms import DetTransform, hflip
from hrnet.labels import flip_pairs_from_names, flip_permutation
from hrnet.models.heads import HeadV2p

from .conftest import TINY_BACKBONE

STREAMS = [(18, 200, 304), (36, 100, 152), (72, 50, 76), (144, 25, 38)]  # W18 streams of an 800x1216 input


def _official_hrfpn(neck: HeadV2p, xs: list[torch.Tensor], conv_stride: int) -> list[torch.Tensor]:
    """The official HRFPN forward written out: upsample by 2**i (scale factor), concat, 1x1, pool 2**i (floor)."""
    up = [xs[0]] + [F.interpolate(x, scale_factor=2**i, mode="bilinear") for i, x in enumerate(xs) if i > 0]
    y = F.conv2d(torch.cat(up, 1), neck.reduction_conv.weight, neck.reduction_conv.bias)
    levels = [y] + [F.avg_pool2d(y, kernel_size=2**i, stride=2**i) for i in range(1, 5)]
    return [F.conv2d(lv, c.weight, c.bias, stride=conv_stride, padding=1) for lv, c in zip(levels, neck.fpn_convs)]


@pytest.mark.parametrize("conv_stride", [1, 2])
def test_pyramid_is_the_official_hrfpn(conv_stride):
    torch.manual_seed(0)
    xs = [torch.randn(1, c, h, w) for c, h, w in STREAMS]
    neck = HeadV2p([c for c, _, _ in STREAMS], out_channels=8, conv_stride=conv_stride).eval()
    with torch.no_grad():
        ours, ref = neck(xs), _official_hrfpn(neck, xs, conv_stride)
    # floor pooling: the stride-64 level of 800x1216 is 12x19 (ceil mode would give 13x19)
    sizes = [(200 // 2**i, 304 // 2**i) for i in range(5)]
    if conv_stride == 2:
        sizes = [((h - 1) // 2 + 1, (w - 1) // 2 + 1) for h, w in sizes]
    assert [tuple(o.shape[-2:]) for o in ours] == sizes
    assert neck.strides == [4 * conv_stride * 2**i for i in range(5)]
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b)


def test_norm_eval_freezes_statistics_not_affine():
    torch.manual_seed(0)
    backbone = HRNetV2pBackbone("hrnet_w18_small_v1", out_channels=16, norm_eval=True, **TINY_BACKBONE).train()
    bn = backbone.body.bn1
    before = bn.running_mean.clone()
    out = backbone(torch.randn(2, 3, 64, 64))
    sum(o.mean() for o in out.values()).backward()
    assert not bn.training and torch.equal(bn.running_mean, before)
    assert bn.weight.grad is not None and bn.weight.grad.abs().sum() > 0  # affine still learns
    trained = HRNetV2pBackbone("hrnet_w18_small_v1", out_channels=16, norm_eval=False, **TINY_BACKBONE).train()
    trained(torch.randn(2, 3, 64, 64))
    assert trained.body.bn1.training and not torch.equal(trained.body.bn1.running_mean, before)


def test_backbone_takes_imagenet_weights_through_create_model(tmp_path):
    src = hrnet.create_model("hrnet_w18_small_v1", **TINY_BACKBONE)
    path = hrnet.save_weights(src, tmp_path / "imagenet.safetensors")
    model = build_detector(
        "faster_rcnn_hrnet_w18_small_v1", num_classes=3, weights_backbone=path, backbone_overrides=TINY_BACKBONE
    )
    assert torch.equal(model.backbone.body.conv1.weight, src.conv1.weight)
    fuse = "stage4.0.fuse_layers.0.1.0.weight"
    assert torch.equal(model.backbone.body.state_dict()[fuse], src.state_dict()[fuse])


def test_names():
    assert parse_name("cascade_mask_rcnn_hrnet_w32") == ("cascade_mask_rcnn", "hrnet_w32")
    assert parse_name("fcos_hrnet_w18_small_v1") == ("fcos", "hrnet_w18_small_v1")
    assert "cascade_rcnn_hrnet_w48" in list_detectors() and "fcos_hrnet_w18" in list_detectors()
    with pytest.raises(ValueError, match="unknown detection model"):
        parse_name("yolo_hrnet_w32")
    model = build_detector(
        "cascade_mask_rcnn_hrnet_w18_small_v1", num_classes=2, backbone_overrides=TINY_BACKBONE, neck_channels=16
    )
    assert framework_of(model) == "cascade_mask_rcnn"


def test_cascade_settings():
    model = cascadercnn_hrnet("hrnet_w18_small_v1", num_classes=5, backbone_overrides=TINY_BACKBONE, neck_channels=16)
    heads = model.roi_heads
    assert [m.high_threshold for m in heads.matchers] == [0.5, 0.6, 0.7]
    assert [m.low_threshold for m in heads.matchers] == [0.5, 0.6, 0.7]
    # 1 / the configs' target stds (0.1, 0.1, 0.2, 0.2) / (0.05, 0.05, 0.1, 0.1) / (0.033, 0.033, 0.067, 0.067)
    weights = [c.weights for c in heads.box_coders]
    assert weights[:2] == [(10, 10, 5, 5), (20, 20, 10, 10)]
    assert weights[2] == pytest.approx((30.303, 30.303, 14.925, 14.925), abs=1e-3)
    assert heads.stage_loss_weights == (1.0, 0.5, 0.25)
    assert all(p.bbox_pred.out_features == 4 and p.cls_score.out_features == 6 for p in heads.box_predictors)


class _Pool(nn.Module):
    def forward(self, features, boxes, image_shapes):
        return torch.zeros(sum(len(b) for b in boxes), 1)


class _Constant(nn.Module):
    """A stage predictor with fixed class logits and zero box deltas (the boxes stay where they are)."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x):
        return self.logits.expand(len(x), -1), torch.zeros(len(x), 4)


def test_cascade_score_is_softmax_of_the_mean_logits():
    stage_logits = [[0.0, 2.0, 0.0], [0.0, 0.0, 3.0], [0.0, 1.0, 0.0]]
    heads = CascadeRoIHeads(_Pool(), [nn.Identity()] * 3, [_Constant(v) for v in stage_logits], score_thresh=0.0).eval()
    box = torch.tensor([[10.0, 10.0, 50.0, 60.0]])
    result, _ = heads({}, [box], [(100, 100)])
    expected = torch.softmax(torch.tensor(stage_logits).mean(0), 0)  # mmdet: mean of logits, then softmax
    probs_mean = torch.softmax(torch.tensor(stage_logits), 1).mean(0)  # detectron2's rule, which differs
    got = {int(lab): float(s) for lab, s in zip(result[0]["labels"], result[0]["scores"])}
    assert got[1] == pytest.approx(float(expected[1])) and got[2] == pytest.approx(float(expected[2]))
    assert got[1] != pytest.approx(float(probs_mean[1]), abs=1e-3)
    torch.testing.assert_close(result[0]["boxes"], box.expand(2, 4))


def test_gaussian_radius_hand_computed():
    # h = w = 10, overlap 0.7: the three CornerNet cases give 19.07, 36.73 and 2.73 -> the smallest
    h = w = 10.0
    r3 = (-2 * 0.7 * 20 + math.sqrt((2 * 0.7 * 20) ** 2 - 4 * 4 * 0.7 * (0.7 - 1) * 100)) / 2
    assert gaussian_radius(h, w, 0.7) == pytest.approx(r3) == pytest.approx(2.7332, abs=1e-4)


def test_centernet_targets_decode_back_to_the_boxes():
    net = nn.Module()
    net.out_channels = 4
    model = CenterNet(net, num_classes=3, transform=DetTransform(64, 64))
    boxes = torch.tensor([[10.0, 12.0, 30.0, 40.0], [33.0, 5.0, 61.0, 21.0]])
    tgt = model.targets([{"boxes": boxes, "labels": torch.tensor([2, 3])}], (16, 16))
    assert tgt["hm"][0, 1].max() == 1 and tgt["hm"][0, 2].max() == 1 and tgt["hm"][0, 0].max() == 0
    # a perfect prediction: heatmap logits of the targets, sizes and offsets written at the centres
    hm = torch.logit(tgt["hm"].clamp(1e-6, 1 - 1e-6))
    wh, reg = torch.zeros(1, 2, 16, 16), torch.zeros(1, 2, 16, 16)
    wh.flatten(2)[0, :, tgt["pos"]] = tgt["wh"].T
    reg.flatten(2)[0, :, tgt["pos"]] = tgt["off"].T
    model.topk = 2
    out = model.decode({"hm": hm, "wh": wh, "reg": reg}, [(64, 64)])[0]
    order = out["labels"].argsort()
    torch.testing.assert_close(out["boxes"][order], boxes)
    assert out["labels"][order].tolist() == [2, 3]


def test_flip_and_keypoint_mirror():
    names = ["nose", "left_eye", "right_eye", "left_ankle", "right_ankle"]
    perm = flip_permutation(len(names), flip_pairs_from_names(names))
    assert perm == [0, 2, 1, 4, 3]
    image = torch.arange(2 * 4, dtype=torch.float32).reshape(1, 2, 4)
    target = {
        "boxes": torch.tensor([[0.0, 0.0, 1.0, 2.0]]),
        "masks": torch.tensor([[[1, 0, 0, 0], [1, 0, 0, 0]]]),
        "keypoints": torch.tensor([[[0.5, 1, 2], [1.0, 1, 2], [3.0, 1, 2], [0, 0, 0], [0, 0, 0]]]),
    }
    img2, t2 = hflip(image, target, perm)
    assert torch.equal(img2[0, 0], torch.tensor([3.0, 2.0, 1.0, 0.0]))
    assert t2["boxes"].tolist() == [[3.0, 0.0, 4.0, 2.0]]  # the mask's column 0 becomes column 3
    assert t2["masks"][0, :, 3].tolist() == [1, 1]
    assert t2["keypoints"][0, :3, 0].tolist() == [3.5, 1.0, 3.0]  # right/left eyes swapped after mirroring


def test_bgr_transform_flips_channels():
    image = torch.rand(3, 32, 32)
    rgb = DetTransform(32, 32, image_mean=(0, 0, 0), image_std=(1, 1, 1))
    bgr = DetTransform(32, 32, image_mean=(0, 0, 0), image_std=(1, 1, 1), bgr=True)
    torch.testing.assert_close(bgr.normalize(image), rgb.normalize(image.flip(0)))
