"""HRNetV2p backbones inside torchvision's Faster / Mask R-CNN: shapes, training losses, inference."""

from __future__ import annotations

import torch

import hrnet
from hrnet.detection import HRNetV2pBackbone, faster_rcnn_hrnet, mask_rcnn_hrnet

SMALL = dict(min_size=128, max_size=160)


def test_pyramid_levels_and_strides():
    backbone = HRNetV2pBackbone("hrnet_w18_small_v1", out_channels=32).eval()
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 128, 160))
    assert list(feats) == ["0", "1", "2", "3", "4"] and backbone.strides == [4, 8, 16, 32, 64]
    assert [tuple(f.shape[-2:]) for f in feats.values()] == [(32, 40), (16, 20), (8, 10), (4, 5), (2, 3)]
    assert all(f.shape[1] == 32 for f in feats.values())
    # the body keeps the official key layout, so ImageNet weights load into it
    assert "stage4.0.fuse_layers.3.0.0.0.weight" in backbone.body.state_dict()


def test_backbone_takes_imagenet_weights(tmp_path):
    src = hrnet.create_model("hrnet_w18_small_v1")
    path = hrnet.save_weights(src, tmp_path / "imagenet.safetensors")
    backbone = HRNetV2pBackbone("hrnet_w18_small_v1", pretrained=path)
    assert torch.equal(backbone.body.conv1.weight, src.conv1.weight)


def _targets(masks: bool) -> list[dict]:
    box = torch.tensor([[20.0, 30.0, 90.0, 110.0]])
    t = {"boxes": box, "labels": torch.tensor([1])}
    if masks:
        m = torch.zeros(1, 128, 160, dtype=torch.uint8)
        m[0, 30:110, 20:90] = 1
        t["masks"] = m
    return [t]


def test_faster_rcnn_trains_and_predicts():
    torch.manual_seed(0)
    model = faster_rcnn_hrnet("hrnet_w18_small_v1", num_classes=3, **SMALL)
    images = [torch.rand(3, 128, 160)]
    losses = model(images, _targets(masks=False))
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.body.conv1.weight.grad is not None
    model.eval()
    with torch.no_grad():
        out = model(images)[0]
    assert out["boxes"].shape[1] == 4 and len(out["boxes"]) == len(out["scores"]) == len(out["labels"])


def test_mask_rcnn_trains():
    torch.manual_seed(0)
    model = mask_rcnn_hrnet("hrnet_w18_small_v1", num_classes=2, **SMALL)
    losses = model([torch.rand(3, 128, 160)], _targets(masks=True))
    assert "loss_mask" in losses and all(torch.isfinite(v) for v in losses.values())
