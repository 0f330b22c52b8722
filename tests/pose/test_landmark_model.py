"""The HRNetV2 keypoint model (facial landmarks, hands): size against the official README, and checkpoints in
the official and mmpose layouts loading strictly (key names written from the upstream configs)."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch
from safetensors.torch import load_file

import hrnet
from hrnet import pretrained
from hrnet.models.weights import load_weights

from ..models.official_layout import _bn, official_backbone, random_state
from ..test_pretrained import mirror  # noqa: F401 - the loopback zoo mirror fixture

BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def official_landmark(width: int, landmarks: int) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of an HRNet-Facial-Landmark-Detection checkpoint (lib/models/hrnet.py with the
    experiments' FINAL_CONV_KERNEL 1): the trunk with every stage-4 output, then ``head`` = 1x1 conv (bias)
    on the 15C concatenation, BN, ReLU (no keys), 1x1 conv to the landmarks."""
    c = 15 * width
    return official_backbone(width, last_module_all_outputs=True) | {
        "head.0.weight": (c, c, 1, 1),
        "head.0.bias": (c,),
        **_bn("head.1", c),
        "head.3.weight": (landmarks, c, 1, 1),
        "head.3.bias": (landmarks,),
    }


def _mmpose0(official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same tensors as mmpose 0.x names them: ``backbone.*`` and ``keypoint_head.final_layer.{0,1,3}``
    (TopdownHeatmapSimpleHead with num_conv_layers=1, num_conv_kernels=(1,), resize_concat input)."""
    return {
        (f"keypoint_head.final_layer.{k[len('head.') :]}" if k.startswith("head.") else f"backbone.{k}"): v
        for k, v in official.items()
    }


def _mmpose1(official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """mmpose 1.x HeatmapHead(conv_out_channels=(270,), conv_kernel_sizes=(1,)): ``head.conv_layers.{0,1}``
    and ``head.final_layer``."""
    out = {}
    for k, v in official.items():
        if k.startswith("head.3."):
            out["head.final_layer." + k[len("head.3.") :]] = v
        elif k.startswith("head."):
            out["head.conv_layers." + k[len("head.") :]] = v
        else:
            out[f"backbone.{k}"] = v
    return out


def test_w18_size_against_the_official_readme():
    """README: "HRNetV2-W18 (#Params=9.3M, GFLOPs=4.3G)". The network of the official code (and mmpose's)
    counts 9.64-9.66M with its head, because the last stage-4 module fuses into all four streams (V2 needs
    them); 9.3M is that network without the final fusion into the three lower streams and without the
    landmark head, which is what the README counts. GFLOPs (multiply-adds / 2**30, this project's
    convention) are 4.29-4.37 from 19 to 98 landmarks at 256x256: 4.3 for AFLW, COFW and 300W."""
    for landmarks, gflops in ((19, 4.29), (29, 4.30), (68, 4.34), (98, 4.37)):
        model = hrnet.create_model("pose_hrnetv2_w18", num_joints=landmarks)
        info = hrnet.model_complexity(model, (256, 256))
        shapes = official_landmark(18, landmarks)
        assert info["params"] == sum(torch.Size(s).numel() for k, s in shapes.items() if not k.endswith(BUFFERS))
        assert abs(info["gflops"] - gflops) < 0.005, (landmarks, info["gflops"])
        fusion = sum(
            p.numel()
            for k, p in model.named_parameters()
            if k.startswith(("stage4.2.fuse_layers.1", "stage4.2.fuse_layers.2", "stage4.2.fuse_layers.3"))
        )
        head = sum(p.numel() for k, p in model.named_parameters() if k.startswith("head."))
        assert round((info["params"] - fusion - head) / 1e6, 1) == 9.3
    assert (
        round(hrnet.model_complexity(hrnet.create_model("pose_hrnetv2_w18", num_joints=68), (256, 256))["gflops"], 1)
        == 4.3
    )


def test_any_width_and_the_heatmap_size():
    for name in ("pose_hrnetv2_w18", "pose_hrnetv2_w32", "pose_hrnetv2_w7"):
        model = hrnet.create_model(name, num_joints=5).eval()
        assert model.head[0].in_channels == 15 * int(name.rsplit("w", 1)[1])
    with torch.no_grad():
        out = hrnet.create_model("pose_hrnetv2_w8", num_joints=98).eval()(torch.zeros(1, 3, 256, 256))
    assert out.shape == (1, 98, 64, 64)  # 256x256 in, 64x64 heatmaps


@pytest.mark.parametrize("layout", ["official", "mmpose0", "mmpose1"])
def test_each_published_layout_loads_strictly(tmp_path, layout):
    official = random_state(official_landmark(8, 98), seed=4)
    state = {"official": official, "mmpose0": _mmpose0(official), "mmpose1": _mmpose1(official)}[layout]
    file = tmp_path / f"{layout}.pth"
    torch.save({"state_dict": state, "meta": {"epoch": 60}}, file)
    model = hrnet.create_model("pose_hrnetv2_w8", num_joints=98)
    result = load_weights(model, file)  # strict: raises on any missing / unexpected key
    assert not result.missing and not result.unexpected
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in official.items())


def test_a_landmark_head_of_another_size_is_named(tmp_path):
    file = tmp_path / "wflw.pth"
    torch.save(random_state(official_landmark(8, 98), seed=5), file)
    with pytest.raises(ValueError, match="98 keypoints but the model has 68"):
        load_weights(hrnet.create_model("pose_hrnetv2_w8", num_joints=68), file)


def test_official_layout_is_recognised():
    keys = dict.fromkeys(official_landmark(8, 98), 0)
    pretrained.check_layout(keys, "official_landmark", "f")
    pretrained.check_layout(dict.fromkeys(_mmpose0(dict.fromkeys(keys, 0)), 0), "mmpose0", "f")
    with pytest.raises(ValueError, match="not a official_landmark file"):
        pretrained.check_layout({"conv1.weight": 0, "final_layer.weight": 0}, "official_landmark", "f")


def test_zoo_converts_an_mmpose_face_file_by_key_name(mirror):  # noqa: F811
    """The WFLW entry's converter on a file in mmpose 0.x's HRNetV2 layout (width 8 to stay small)."""
    official = random_state(official_landmark(8, 98), seed=6)
    file = mirror.root / "zoo/hrnetv2_face.pth"
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"meta": {"epoch": 60}, "state_dict": _mmpose0(official)}, file)
    base = pretrained.entry("pose_hrnetv2_w18.wflw_256x256")
    item = dataclasses.replace(
        base,
        name="pose_hrnetv2_w8.wflw_test",
        urls=("https://weights.example.invalid/zoo/hrnetv2_face.pth",),
        sha256=hashlib.sha256(file.read_bytes()).hexdigest(),
    )
    path = pretrained.resolve_entry(item, progress=False)
    converted = load_file(str(path))
    assert set(converted) == set(official)
    assert all(torch.equal(converted[k], official[k]) for k in official)
    card = hrnet.read_card(path)
    assert card.num_outputs == 98 and card.meta["keypoint_set"]["name"] == "wflw"
