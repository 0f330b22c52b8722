"""Official / timm / mmpose / mmseg weights load strictly and compute the same function."""

from __future__ import annotations

import pytest
import torch

import hrnet
from hrnet.models.weights import LoadResult

from .official_layout import official_pose, official_seg, random_state

timm = pytest.importorskip("timm")


def _calibrated_timm(name: str) -> torch.nn.Module:
    """A seeded timm model whose BN statistics come from a few batches, so activations stay O(1)."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, 128, 128))
    return model.eval()


@pytest.mark.parametrize("name", ["hrnet_w18_small", "hrnet_w18", "hrnet_w32"])
def test_timm_state_dict_loads_strictly_and_logits_agree(name):
    reference = _calibrated_timm(name)
    ours = hrnet.create_model(name).eval()
    assert hrnet.load_weights(ours, reference.state_dict()) == LoadResult([], [])
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        diff = (reference(x) - ours(x)).abs().max().item()
    assert diff < 1e-5


@pytest.mark.parametrize(
    ("name", "layout"), [("pose_hrnet_w32", official_pose(32)), ("seg_hrnet_w48", official_seg(48))]
)
def test_state_dict_keys_equal_official_layout(name, layout):
    own = {k: tuple(v.shape) for k, v in hrnet.create_model(name).state_dict().items()}
    assert own == layout


def test_official_pose_file_loads_strictly(tmp_path):
    state = random_state(official_pose(32))
    path = tmp_path / "pose_hrnet_w32_256x192.pth"
    torch.save(state, path)
    model = hrnet.create_model("pose_hrnet_w32")
    hrnet.load_weights(model, path)
    assert torch.equal(
        model.state_dict()["stage4.2.fuse_layers.0.3.1.running_var"], state["stage4.2.fuse_layers.0.3.1.running_var"]
    )


def test_official_seg_file_with_model_prefix_and_loss_weight(tmp_path):
    """Official segmentation files: keys under ``model.``, a ``loss.criterion.weight``, no num_batches_tracked."""
    state = {
        f"model.{k}": v for k, v in random_state(official_seg(18)).items() if not k.endswith("num_batches_tracked")
    }
    state["loss.criterion.weight"] = torch.ones(19)
    path = tmp_path / "hrnet_w18_cityscapes.pth"
    torch.save({"state_dict": state, "epoch": 3}, path)
    model = hrnet.create_model("seg_hrnet_w18")
    assert hrnet.load_weights(model, path) == LoadResult([], [])


def test_mmseg_layout_maps_onto_last_layer():
    model = hrnet.create_model("seg_hrnet_w18_small_v1", num_classes=5).eval()
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    ref["last_layer.0.bias"].zero_()  # mmseg's head conv has no bias
    mm = {}
    for k, v in ref.items():
        k2 = (
            k.replace("last_layer.0.", "decode_head.convs.0.conv.")
            .replace("last_layer.1.", "decode_head.convs.0.bn.")
            .replace("last_layer.3.", "decode_head.conv_seg.")
        )
        if k2 == "decode_head.convs.0.conv.bias":
            continue
        mm[k2 if k2.startswith("decode_head") else f"backbone.{k}"] = v
    fresh = hrnet.create_model("seg_hrnet_w18_small_v1", num_classes=5).eval()
    hrnet.load_weights(fresh, {"meta": {}, "state_dict": mm})
    x = torch.randn(1, 3, 64, 96)
    model.load_state_dict(ref)
    with torch.no_grad():
        assert torch.allclose(model(x), fresh(x), atol=1e-6)


@pytest.mark.parametrize("head_prefix", ["keypoint_head.", "head."])
def test_mmpose_layout(head_prefix):
    src = hrnet.create_model("pose_hrnet_w18_small_v1").state_dict()
    mm = {(f"{head_prefix}{k}" if k.startswith("final_layer") else f"backbone.{k}"): v for k, v in src.items()}
    model = hrnet.create_model("pose_hrnet_w18_small_v1")
    hrnet.load_weights(model, {"state_dict": mm})
    assert torch.equal(model.final_layer.weight, src["final_layer.weight"])


def test_ddp_prefix_and_missing_num_batches_tracked():
    src = hrnet.create_model("hrnet_w18_small_v1", num_classes=10).state_dict()
    wrapped = {f"module.{k}": v for k, v in src.items() if "num_batches_tracked" not in k}
    assert hrnet.load_weights(hrnet.create_model("hrnet_w18_small_v1", num_classes=10), wrapped) == LoadResult([], [])


def test_other_width_names_first_mismatching_shapes():
    src = hrnet.create_model("pose_hrnet_w18_small_v1").state_dict()
    with pytest.raises(ValueError, match=r"conv1\.weight|transition1.*file \(.*\) vs model"):
        hrnet.load_weights(hrnet.create_model("pose_hrnet_w18_small_v2"), src)


def test_other_task_lists_missing_and_unexpected():
    src = hrnet.create_model("pose_hrnet_w18_small_v1").state_dict()
    with pytest.raises(ValueError, match=r"missing keys: .*last_layer.*unexpected keys: .*final_layer"):
        hrnet.load_weights(hrnet.create_model("seg_hrnet_w18_small_v1"), src)
    result = hrnet.load_weights(hrnet.create_model("seg_hrnet_w18_small_v1"), src, strict=False)
    assert "final_layer.weight" in result.unexpected and "last_layer.3.weight" in result.missing


def test_exclude_keeps_new_head():
    src = hrnet.create_model("pose_hrnet_w18_small_v1").state_dict()
    model = hrnet.create_model("pose_hrnet_w18_small_v1", num_joints=5)
    assert hrnet.load_weights(model, src, exclude=("final_layer.",)) == LoadResult([], [])


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="broken.pth"):
        hrnet.load_weights(hrnet.create_model("hrnet_w18_small_v1"), bad)
    bad_st = tmp_path / "broken.safetensors"
    bad_st.write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="broken.safetensors"):
        hrnet.read_state_dict(bad_st)
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        hrnet.read_state_dict(tmp_path / "nothere.pth")


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": Evil()}}, path)
    with pytest.raises(ValueError, match="evil.pth"):
        hrnet.read_state_dict(path)


def test_safetensors_round_trip(tmp_path):
    model = hrnet.create_model("pose_hrnet_w18_small_v1")
    path = hrnet.save_weights(model, tmp_path / "w.safetensors")
    other = hrnet.create_model("pose_hrnet_w18_small_v1")
    hrnet.load_weights(other, path)
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), k
    assert not list(tmp_path.glob("*.tmp"))


def test_pretrained_uses_hub_file(tmp_path, monkeypatch):
    """``pretrained=True`` asks the hub for timm's official copy; here the download is a local file."""
    src = _calibrated_timm("hrnet_w18_small")
    local = hrnet.save_weights(src.state_dict(), tmp_path / "model.safetensors")
    asked = []

    def fake_download(repo_id, filename="model.safetensors"):
        asked.append((repo_id, filename))
        return local

    monkeypatch.setattr("hrnet.models.sources.hub_download", fake_download)
    model = hrnet.create_model("hrnet_w18_small", pretrained=True).eval()
    assert asked == [("timm/hrnet_w18_small.ms_in1k", "model.safetensors")]
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(model(x), src(x), atol=1e-5)
    # another class count: the classifier is re-initialised, the rest loads
    model10 = hrnet.create_model("hrnet_w18_small", pretrained=local, num_classes=10)
    assert torch.equal(model10.conv1.weight, src.conv1.weight)
    # a pose model initialised from the classification file (the ImageNet initialisation of Section 4)
    pose = hrnet.create_model("pose_hrnet_w18_small_v1", pretrained=local)
    assert torch.equal(pose.layer1[0].conv1.weight, src.layer1[0].conv1.weight)
