"""Backbone topology, options, heads and the features API."""

from __future__ import annotations

import math

import pytest
import torch

import hrnet
from hrnet.models.backbone import HRNetConfig, MultiResolutionModule
from hrnet.models.heads import HeadC, HeadV1, HeadV1h, HeadV2, HeadV2p


def _fusing_modules(model) -> int:
    return sum(isinstance(m, MultiResolutionModule) and m.fuse_layers is not None for m in model.modules())


@pytest.mark.parametrize(("size"), [(473, 473), (97, 130), (256, 192)])
def test_any_input_size(size):
    model = hrnet.create_model("seg_hrnet_w18_small_v1", num_classes=4).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    # the stem halves twice with padding 1: ceil(ceil(h/2)/2)
    expect = [math.ceil(math.ceil(s / 2) / 2) for s in size]
    assert tuple(out.shape) == (1, 4, *expect)


def test_stream_widths_and_strides():
    model = hrnet.create_model("hrnet_w32")
    assert model.out_channels == [32, 64, 128, 256]
    assert model.out_strides == [4, 8, 16, 32]
    with torch.no_grad():
        xs = model.eval().forward_streams(torch.randn(1, 3, 128, 96))
    assert [tuple(x.shape[1:]) for x in xs] == [(32, 32, 24), (64, 16, 12), (128, 8, 6), (256, 4, 3)]


def test_small_variants_topology():
    v1 = hrnet.create_model("hrnet_w18_small")
    assert v1.cfg == hrnet.create_model("hrnet_w18_small_v1").cfg
    assert v1.out_channels == [16, 32, 64, 128] and len(v1.layer1) == 1
    v2 = hrnet.create_model("hrnet_w18_small_v2")
    assert v2.out_channels == [18, 36, 72, 144] and len(v2.stage3) == 3 and len(v2.stage4) == 2


def test_fusion_schemes_count_fusions():
    """Table 12: 8 fusion units in the standard net, 3 across stages only, 1 final."""
    for scheme, count in [("full", 8), ("across", 3), ("final", 1)]:
        assert _fusing_modules(hrnet.create_model("pose_hrnet_w8", fusion=scheme)) == count
    with torch.no_grad():
        out = hrnet.create_model("pose_hrnet_w8", fusion="final").eval()(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 17, 16, 16)


def test_resolution_maintenance_variant():
    model = hrnet.create_model("hrnet_w8", parallel_from_start=True)
    assert [len(m.branches) for m in model.stage2] == [4]
    assert all(len(m.branches) == 4 for m in [*model.stage3, *model.stage4])
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_upsampling_options_change_output_but_not_weights():
    near = hrnet.create_model("seg_hrnet_w8", upsample="nearest").eval()
    bil = hrnet.create_model("seg_hrnet_w8", upsample="bilinear", align_corners=True).eval()
    bil.load_state_dict(near.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(near(x), bil(x))
    assert bil.cfg.align_corners is True and near.cfg.upsample == "nearest"


def test_bn_momentum_and_bottleneck_branches():
    model = hrnet.create_model("hrnet_w16", bn_momentum=0.01, branch_block="bottleneck")
    assert model.bn1.momentum == 0.01
    assert model.out_channels == [16, 32, 64, 128]  # stream widths; 4, 8, 16, 32 inner planes
    assert model.stage2[0].branches[0][0].conv1.out_channels == 4
    with pytest.raises(ValueError, match="multiple of 4"):
        hrnet.create_model("hrnet_w18", branch_block="bottleneck")


def test_pose_uses_only_high_resolution_output():
    model = hrnet.create_model("pose_hrnet_w32")
    assert len(model.stage4[-1].fuse_layers) == 1 and model.final_layer.out_channels == 17


def test_heads_shapes():
    cfg = HRNetConfig(width=8)
    xs = [torch.randn(2, 8 * 2**i, 32 // 2**i, 24 // 2**i) for i in range(4)]
    assert HeadV1(cfg.branch_channels)(xs).shape == (2, 8, 32, 24)
    assert HeadV1h(cfg.branch_channels)(xs).shape == (2, 120, 32, 24)
    assert HeadV2(cfg.branch_channels)(xs).shape == (2, 120, 32, 24)
    assert HeadV2(cfg.branch_channels, out_channels=64)(xs).shape == (2, 64, 32, 24)
    pyramid = HeadV2p(cfg.branch_channels, out_channels=32)(xs)
    assert [tuple(p.shape[-2:]) for p in pyramid] == [(32, 24), (16, 12), (8, 6), (4, 3), (2, 1)]  # floor pooling
    assert HeadV2p(cfg.branch_channels, conv_stride=2).strides == [8, 16, 32, 64, 128]
    assert HeadC(cfg.branch_channels)(xs).shape == (2, 2048)


@pytest.mark.parametrize(("head", "dim"), [("c", 2048), ("ci", 15 * 8), ("cii", 2048)])
def test_classification_heads(head, dim):
    model = hrnet.create_model("hrnet_w8", head=head, num_classes=7).eval()
    assert model.classifier.in_features == dim
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)


def test_features_api():
    model = hrnet.create_model("hrnet_w18", features_only=True, out_indices=(1, 3)).eval()
    assert [(f["num_chs"], f["reduction"]) for f in model.feature_info] == [(36, 8), (144, 32)]
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 128, 128))
    assert [tuple(f.shape) for f in feats] == [(1, 36, 16, 16), (1, 144, 4, 4)]
    stage2 = hrnet.create_model("hrnet_w18", features_only=True, feature_stage=2)
    assert [f["num_chs"] for f in stage2.feature_info] == [18, 36]
    assert not any(k.startswith(("stage3", "stage4")) for k in stage2.state_dict())
    with pytest.raises(ValueError, match="out_indices"):
        hrnet.create_model("hrnet_w18", features_only=True, feature_stage=2, out_indices=(2,))


def test_bad_names_and_widths():
    with pytest.raises(ValueError, match="did you mean.*hrnet_w18"):
        hrnet.create_model("hrnet_w18_smal")
    with pytest.raises(ValueError, match="unknown model name"):
        hrnet.create_model("resnet50")
    with pytest.raises(ValueError, match="positive"):
        hrnet.create_model("hrnet_w0")
    with pytest.raises(ValueError, match="positive"):
        hrnet.create_model("hrnet_w18", width=-3)


def test_input_smaller_than_stride():
    model = hrnet.create_model("hrnet_w8").eval()
    with pytest.raises(ValueError, match="smaller than the network's stride 32"):
        model(torch.randn(1, 3, 24, 64))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.randn(1, 1, 64, 64))


def test_list_models():
    names = hrnet.list_models()
    expected = {"hrnet_w18", "hrnet_w64", "pose_hrnet_w32", "pose_hrnet_w48", "seg_hrnet_w48", "hrnet_w18_small"}
    assert expected <= set(names)
    assert all("pose" in n for n in hrnet.list_models("pose"))
