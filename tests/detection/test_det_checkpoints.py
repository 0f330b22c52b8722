"""Official HRNet-Object-Detection and mmdet v2 checkpoints load into our torchvision detectors.

The synthetic checkpoints are written here, by hand, in the published key layouts (and mmdet v2's
background-last class order); loading them must give back every tensor and the same predictions.
"""

from __future__ import annotations

import re

import pytest
import torch

import hrnet
from hrnet.detection import build_detector, load_detection_weights
from hrnet.detection.checkpoints import detect_layout

from .conftest import TINY_BACKBONE

K = 3  # object classes


def _model(name: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_detector(
        name,
        num_classes=K,
        backbone_overrides=TINY_BACKBONE,
        neck_channels=16,
        min_size=96,
        max_size=128,
        box_score_thresh=0.0,
        rpn_post_nms_top_n_test=50,
        box_detections_per_img=10,
    )
    with torch.no_grad():  # random heads, so any misplaced tensor shows in the predictions
        for name_, p in model.named_parameters():
            if "roi_heads" in name_ or "rpn" in name_:
                p.normal_(0, 0.05)
        # mmdet v2 has no background box row or mask channel: zero ours so the round trip is exact
        sd = model.state_dict()
        for key, v in sd.items():
            if key.endswith("bbox_pred.weight") and v.shape[0] > 4 or key.endswith("bbox_pred.bias") and v.shape[0] > 4:
                v[:4] = 0
            if "mask_fcn_logits" in key:
                v[:1] = 0
    return model.eval()


def _official_key(key: str, mmdet: bool) -> str:
    """Our key -> the official (mmdet v0.x) or mmdet v2 name, by the tables in the two repositories."""
    roi = "roi_head." if mmdet else ""
    rules = [
        (r"^backbone\.body\.", "backbone."),
        (r"^backbone\.neck\.reduction_conv\.", "neck.reduction_conv.conv." if mmdet else "neck.reduction_conv.0."),
        (r"^backbone\.neck\.fpn_convs\.(\d)\.", r"neck.fpn_convs.\1.conv." if mmdet else r"neck.fpn_conv.\1."),
        (r"^rpn\.head\.conv\.0\.0\.", "rpn_head.rpn_conv."),
        (r"^rpn\.head\.cls_logits\.", "rpn_head.rpn_cls."),
        (r"^rpn\.head\.bbox_pred\.", "rpn_head.rpn_reg."),
        (r"^roi_heads\.box_head\.fc6\.", roi + "bbox_head.shared_fcs.0."),
        (r"^roi_heads\.box_head\.fc7\.", roi + "bbox_head.shared_fcs.1."),
        (r"^roi_heads\.box_predictor\.cls_score\.", roi + "bbox_head.fc_cls."),
        (r"^roi_heads\.box_predictor\.bbox_pred\.", roi + "bbox_head.fc_reg."),
        (r"^roi_heads\.mask_head\.(\d)\.0\.", roi + r"mask_head.convs.\1.conv."),
        (r"^roi_heads\.mask_predictor\.conv5_mask\.", roi + "mask_head.upsample."),
        (r"^roi_heads\.mask_predictor\.mask_fcn_logits\.", roi + "mask_head.conv_logits."),
        (r"^roi_heads\.box_heads\.(\d)\.fc6\.", roi + r"bbox_head.\1.shared_fcs.0."),
        (r"^roi_heads\.box_heads\.(\d)\.fc7\.", roi + r"bbox_head.\1.shared_fcs.1."),
        (r"^roi_heads\.box_predictors\.(\d)\.cls_score\.", roi + r"bbox_head.\1.fc_cls."),
        (r"^roi_heads\.box_predictors\.(\d)\.bbox_pred\.", roi + r"bbox_head.\1.fc_reg."),
        (r"^roi_heads\.mask_heads\.(\d)\.(\d)\.0\.", roi + r"mask_head.\1.convs.\2.conv."),
        (r"^roi_heads\.mask_predictors\.(\d)\.conv5_mask\.", roi + r"mask_head.\1.upsample."),
        (r"^roi_heads\.mask_predictors\.(\d)\.mask_fcn_logits\.", roi + r"mask_head.\1.conv_logits."),
    ]
    for pattern, repl in rules:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    raise AssertionError(f"no official name for {key}")


def _to_mmdet_rows(key: str, v: torch.Tensor) -> torch.Tensor:
    """mmdet v2 class order: background score last; no background box row or mask channel."""
    if "cls_score" in key:
        return torch.cat([v[1:], v[:1]])
    if "bbox_pred" in key and v.shape[0] > 4:
        return v[4:]
    if "mask_fcn_logits" in key:
        return v[1:]
    return v


def _export(model: torch.nn.Module, mmdet: bool) -> dict:
    state = {}
    for key, v in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue  # old mmdet checkpoints lack them
        state[_official_key(key, mmdet)] = _to_mmdet_rows(key, v) if mmdet else v.clone()
    return {"meta": {"mmdet_version": "2.x" if mmdet else "0.6.0"}, "state_dict": state}


@pytest.mark.parametrize(
    ("name", "mmdet"),
    [
        ("mask_rcnn_hrnet_w18_small_v1", False),
        ("mask_rcnn_hrnet_w18_small_v1", True),
        ("cascade_mask_rcnn_hrnet_w18_small_v1", False),
        ("cascade_mask_rcnn_hrnet_w18_small_v1", True),
    ],
)
def test_official_and_mmdet_checkpoints_load(tmp_path, name, mmdet):
    src = _model(name, seed=0)
    ckpt = _export(src, mmdet)
    if mmdet:
        # the file really is in mmdet's order: K class rows then background, K mask channels
        cls_key = next(k for k in ckpt["state_dict"] if k.endswith("fc_cls.weight"))
        assert ckpt["state_dict"][cls_key].shape[0] == K + 1
        assert torch.equal(ckpt["state_dict"][cls_key][-1], src.state_dict()[_ours(src, cls_key)][0])
    path = tmp_path / "official.pth"
    torch.save(ckpt, path)
    assert detect_layout(hrnet.read_state_dict(path)) == ("mmdet" if mmdet else "official")
    dst = _model(name, seed=1)
    load_detection_weights(dst, path)
    for key, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[key], v), key
    image = [torch.rand(3, 96, 128, generator=torch.Generator().manual_seed(3))]
    with torch.no_grad():
        a, b = src(image)[0], dst(image)[0]
    assert len(a["boxes"]) > 0
    torch.testing.assert_close(a["boxes"], b["boxes"])
    torch.testing.assert_close(a["masks"], b["masks"])


def _ours(model: torch.nn.Module, official: str) -> str:
    return next(k for k in model.state_dict() if _official_key(k, True) == official)


def test_our_files_round_trip_and_head_mismatch(tmp_path):
    src = _model("faster_rcnn_hrnet_w18_small_v1", seed=0)
    path = hrnet.save_weights(src, tmp_path / "det.safetensors")
    dst = _model("faster_rcnn_hrnet_w18_small_v1", seed=1)
    hrnet.load_weights(dst, path)  # the shared loader reads detector files too ("backbone." keys kept)
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in src.state_dict().items())
    other = build_detector(
        "faster_rcnn_hrnet_w18_small_v1", num_classes=K + 2, backbone_overrides=TINY_BACKBONE, neck_channels=16
    )
    with pytest.raises(ValueError, match="predict"):
        load_detection_weights(other, path)
    result = load_detection_weights(other, path, on_head_mismatch="reinit")
    assert sorted({k.rsplit(".", 1)[0] for k in result.reinitialized}) == [
        "roi_heads.box_predictor.bbox_pred",
        "roi_heads.box_predictor.cls_score",
    ]
    assert torch.equal(other.backbone.body.conv1.weight, src.backbone.body.conv1.weight)


def test_wrong_file_is_one_clear_error(tmp_path):
    model = _model("faster_rcnn_hrnet_w18_small_v1", seed=0)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_detection_weights(model, tmp_path / "missing.pth")
    path = hrnet.save_weights(hrnet.create_model("hrnet_w18_small_v1", **TINY_BACKBONE), tmp_path / "cls.safetensors")
    with pytest.raises(ValueError, match="cls.safetensors"):
        load_detection_weights(model, path)
