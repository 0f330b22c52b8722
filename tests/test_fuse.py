"""BatchNorm folding: hand-computed fold, every task model within 1e-5 of eager, refusal in training mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hrnet
from hrnet.models.fuse import FusionError, count_batchnorms, fold_bn, fuse

TINY = dict(stage_modules=(1, 1, 1))


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine terms, so folding has something to fold."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) * 0.6 - 0.3)
    return model.eval()


def _flat(out) -> torch.Tensor:
    return torch.cat([t.flatten() for t in out]) if isinstance(out, (list, tuple)) else out.flatten()


def test_fold_bn_matches_hand_computed_values() -> None:
    # conv: weight 2, bias 0.5 -> 2 * 3 + 0.5 = 6.5; BN: (6.5 - 1) / sqrt(4) * 0.5 + 1 = 2.375
    conv = nn.Conv2d(1, 1, 1, bias=True)
    bn = nn.BatchNorm2d(1, eps=0.0)
    with torch.no_grad():
        conv.weight.fill_(2.0)
        conv.bias.fill_(0.5)
        bn.running_mean.fill_(1.0)
        bn.running_var.fill_(4.0)
        bn.weight.fill_(0.5)
        bn.bias.fill_(1.0)
    folded = fold_bn(conv, bn.eval())
    assert folded.weight.item() == pytest.approx(0.5)  # 2 * 0.5 / 2
    assert folded.bias.item() == pytest.approx(0.875)  # (0.5 - 1) * 0.25 + 1
    assert folded(torch.full((1, 1, 1, 1), 3.0)).item() == pytest.approx(2.375)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("pose_hrnet_w18_small_v1", {}),
        ("seg_hrnet_w18_small_v1", {}),
        ("hrnet_w18_small_v1", {"head": "c"}),
        ("hrnet_w18_small_v1", {"head": "ci"}),
        ("hrnet_w18_small_v1", {"head": "cii"}),
        ("hrnet_w18_small_v1", {"features_only": True}),
        ("hrnet_w18_small_v2", {"stage_blocks": 1}),
    ],
)
def test_fused_model_matches_eager(name: str, kwargs: dict) -> None:
    model = _randomize_bn(hrnet.create_model(name, **TINY, **kwargs))
    n_bn = count_batchnorms(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse(model)
    assert count_batchnorms(fused) == 0 and fused.fused_bn == n_bn > 0
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, got = _flat(model(x)), _flat(fused(x))
    assert ((ref - got).abs().max() / ref.abs().max()).item() < 1e-5
    # the original is untouched (fuse copies unless inplace)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert count_batchnorms(model) == n_bn


def test_fuse_refuses_training_mode_and_inplace_works() -> None:
    model = hrnet.create_model("pose_hrnet_w18_small_v1", **TINY)
    with pytest.raises(FusionError, match="eval mode"):
        fuse(model)
    model.eval()
    assert fuse(model, inplace=True) is model and count_batchnorms(model) == 0


def test_fold_bn_rejects_mismatched_layers() -> None:
    with pytest.raises(FusionError, match="8 channels"):
        fold_bn(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(8).eval())


@pytest.mark.parametrize(
    "name", ["faster_rcnn_hrnet_w18_small_v1", "fcos_hrnet_w18_small_v1", "centernet_hrnet_w18_small_v1"]
)
def test_fused_detector_matches_eager(name: str) -> None:
    """Detectors fold too: every backbone BN goes, the pyramid levels (or the V2 map) stay within 1e-5."""
    from hrnet.detection import build_detector

    model = _randomize_bn(build_detector(name, num_classes=80, backbone_overrides=TINY))
    fused = fuse(model)
    assert count_batchnorms(fused) == 0 and fused.fused_bn > 0
    x = torch.randn(1, 3, 128, 160, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref, got = model.backbone(x), fused.backbone(x)
    ref, got = (_flat(list(r.values())) if isinstance(r, dict) else r.flatten() for r in (ref, got))
    assert ((ref - got).abs().max() / ref.abs().max()).item() < 1e-5
