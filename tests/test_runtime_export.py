"""Runtimes and export: parity with eager / the Python decoding, checked with onnxruntime on the CPU.

Truth here is independent of the code under test: the eager model, the project's Python decoding
(``predict_crops`` + ``HeatmapCodec``, ``predict_probs``, softmax top-k) on the same real crops, and
onnxruntime / ``torch.jit.load`` reading the written files directly.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import hrnet
from hrnet.io import read_image
from hrnet.models.card import CARD_KEY, ModelCard
from hrnet.runtime import optimize_for_inference

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TINY = dict(stage_modules=(1, 1, 1))
POSE_HW = (128, 96)  # crop (H, W): heatmaps 32 x 24


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    return float((a - b).abs().max() / a.abs().max())


def _session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(sess: ort.InferenceSession, x: torch.Tensor) -> list[np.ndarray]:
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})


@pytest.fixture(scope="module")
def pose_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return hrnet.create_model("pose_hrnet_w18_small_v1", **TINY).eval()


@pytest.fixture(scope="module")
def coco_crops(shared_data):
    """Real person crops (normalised) of one COCO image with its annotated boxes, and their centers / scales."""
    from hrnet.pose.inference import crop_people

    root = shared_data / "coco_kpt_sample"
    ann = json.loads((root / "person_keypoints_sample.json").read_text())
    image = ann["images"][0]
    boxes = [a["bbox"] for a in ann["annotations"] if a["image_id"] == image["id"]][:3]
    xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in boxes])
    rgb = read_image(root / "images" / image["file_name"])
    crops, centers, scales = crop_people(rgb, xyxy, (POSE_HW[1], POSE_HW[0]))
    return crops, centers, scales


# ---- optimize_for_inference ----------------------------------------------------------------------
def test_torch_runtime_matches_eager_on_any_batch(pose_model) -> None:
    runner = optimize_for_inference(pose_model, "torch", (2, 3, 64, 48))
    x = torch.randn(5, 3, 64, 48)
    with torch.no_grad():
        ref = pose_model(x)
    out = runner(x)
    assert runner.runtime == "torch" and out.is_contiguous() and out.shape == ref.shape
    assert _rel(ref, out) < 1e-4
    assert pose_model.training is False and hasattr(pose_model, "bn1")  # the caller's model is not fused


def test_onnx_and_auto_runtimes_match_eager(pose_model) -> None:
    runner = optimize_for_inference(pose_model, "onnx", (1, 3, 64, 48), check=True)
    assert runner.runtime == "onnx"
    for shape in [(3, 3, 64, 48), (2, 3, 96, 64)]:  # another batch, then another size (a second session)
        x = torch.randn(shape)
        with torch.no_grad():
            assert _rel(pose_model(x), runner(x)) < 1e-4
    assert set(runner.sessions) == {(64, 48), (96, 64)}
    assert runner.last_error is not None and runner.last_error < 1e-4  # the new session was checked
    # auto on a CPU: a few images of a tiny model never pay for any setup, so they run eager, and the
    # cached exports above (made by the "onnx" runner) are not even looked up (see test_runtime_cache.py)
    auto = optimize_for_inference(pose_model, "auto", (1, 3, 64, 48))
    x = torch.randn(3, 3, 64, 48)
    out = auto(x)
    with torch.no_grad():
        assert auto.runtime == "auto" and auto.used == {(64, 48): "eager"} and _rel(pose_model(x), out) < 1e-5


def test_runtime_errors(pose_model) -> None:
    with pytest.raises(ValueError, match="runtime must be one of"):
        optimize_for_inference(pose_model, "tensorrt")
    with pytest.raises(ValueError, match=r"input_shape must be \(B, 3, H, W\)"):
        optimize_for_inference(pose_model, "torch", (1, 64, 48))
    with pytest.raises(ValueError, match="eval mode"):
        optimize_for_inference(hrnet.create_model("pose_hrnet_w18_small_v1", **TINY), "torch")
    runner = optimize_for_inference(pose_model, "torch")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        runner(torch.zeros(3, 64, 48))


@pytest.mark.slow
def test_compile_runtime_matches_eager(pose_model) -> None:
    runner = optimize_for_inference(pose_model, "compile", (2, 3, 64, 48))
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        assert _rel(pose_model(x), runner(x)) < 1e-4


# ---- export: raw outputs and the model card ------------------------------------------------------
@pytest.mark.parametrize("name, size", [("seg_hrnet_w18_small_v1", (64, 96)), ("hrnet_w18_small_v1", (64, 64))])
def test_onnx_export_raw_parity_and_card(tmp_path, name: str, size: tuple[int, int]) -> None:
    from hrnet import registry
    from hrnet.export import export
    from hrnet.loader import model_from_card

    card = registry.spec_of_model(name).default_card.load()(name, size)  # what `hrnet export NAME` writes
    torch.manual_seed(0)
    model = model_from_card(card).eval()
    path = tmp_path / "model.onnx"
    summary = export(model, path, card=card, dynamic_batch=True)
    proto = onnx.load(str(path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    meta = {p.key: p.value for p in proto.metadata_props}
    assert ModelCard.from_dict(json.loads(meta[CARD_KEY])).to_dict() == card.to_dict()
    assert json.loads(meta["hrnet.outputs"]) == summary["outputs"] == ["logits"]
    x = torch.randn(3, 3, *size)  # batch 3 on a graph traced at batch 1: the batch axis is dynamic
    with torch.no_grad():
        ref = model(x)
    got = torch.from_numpy(_run(_session(path), x)[0])
    assert got.shape == ref.shape and _rel(ref, got) < 1e-4
    assert summary["max_rel_error"] < 1e-4


def test_cls_decoded_topk_matches_softmax(tmp_path) -> None:
    from hrnet.export import export

    torch.manual_seed(0)
    model = hrnet.create_model("hrnet_w18_small_v1", num_classes=10, **TINY).eval()
    card = ModelCard(
        task="cls",
        model="hrnet_w18_small_v1",
        num_outputs=10,
        labels=list("abcdefghij"),
        overrides={"stage_modules": [1, 1, 1]},
        input_size=[64, 64],
    )
    path = tmp_path / "cls.onnx"
    export(model, path, card=card, decode=True, topk=3, dynamic_batch=True, check=False)
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        ref_scores, ref_indices = model(x).softmax(1).topk(3, dim=1)
    scores, indices = _run(_session(path), x)
    assert indices.dtype == np.int64 and np.array_equal(indices, ref_indices.numpy())
    assert np.abs(scores - ref_scores.numpy()).max() < 1e-5


def test_pose_export_from_carded_weights_decodes_like_predict_crops(tmp_path, pose_model, coco_crops) -> None:
    """Decoded keypoints in crop pixels within 0.01 px of predict_crops (flip test on) on real crops."""
    from hrnet.export import export, read_onnx_card
    from hrnet.pose.codec import HeatmapCodec
    from hrnet.pose.inference import predict_crops
    from hrnet.pose.keypoints import load_keypoint_set
    from hrnet.pose.model import keypoint_set_to_dict
    from hrnet.pose.transforms import affine_points, get_affine_transform

    ks = load_keypoint_set("coco")
    card = ModelCard(
        task="pose",
        model="pose_hrnet_w18_small_v1",
        num_outputs=17,
        labels=list(ks.names),
        overrides={"stage_modules": [1, 1, 1]},
        input_size=list(POSE_HW),
        meta={"keypoint_set": keypoint_set_to_dict(ks)},
        test={"shift_heatmap": True},
    )
    weights = tmp_path / "pose.safetensors"
    hrnet.save_weights(pose_model, weights, card=card)
    decoded = tmp_path / "pose-decode.onnx"
    export(weights, decoded, decode=True, flip=True, dynamic_batch=True, check=False)
    assert read_onnx_card(decoded).to_dict() == card.to_dict()

    crops, centers, scales = coco_crops
    codec = HeatmapCodec((POSE_HW[1], POSE_HW[0]))
    kpts_img, scores_ref = predict_crops(pose_model, crops, centers, scales, codec, ks.flip_pairs, flip_test=True)
    # image pixels -> input-crop pixels through each crop's own affine transform
    kpts_crop = np.stack(
        [
            affine_points(k, get_affine_transform(c, s, 0.0, codec.input_size))
            for k, c, s in zip(kpts_img, centers, scales)
        ]
    )
    keypoints, scores = _run(_session(decoded), crops)
    assert keypoints.shape == (len(crops), 17, 2) and scores.shape == (len(crops), 17)
    assert np.abs(keypoints - kpts_crop).max() < 0.01
    assert np.abs(scores - scores_ref).max() <= 1e-4 * np.abs(scores_ref).max()


def test_seg_decoded_labels_match_python_path(tmp_path, shared_data) -> None:
    from hrnet.export import export
    from hrnet.segmentation.inference import predict_probs
    from hrnet.segmentation.transforms import resize_pair, to_tensor

    torch.manual_seed(0)
    model = hrnet.create_model("seg_hrnet_w18_small_v1", num_classes=19, **TINY).eval()
    card = ModelCard(
        task="seg",
        model="seg_hrnet_w18_small_v1",
        num_outputs=19,
        labels=[str(i) for i in range(19)],
        overrides={"stage_modules": [1, 1, 1]},
        input_size=[128, 256],
    )
    path = tmp_path / "seg.onnx"
    summary = export(model, path, card=card, decode=True, check=False)
    assert summary["outputs"] == ["labels"]
    image = next(iter(sorted((shared_data / "cityscapes_sample" / "leftImg8bit").rglob("*.png"))))
    rgb, _ = resize_pair(read_image(image), None, (128, 256))
    x = to_tensor(rgb).unsqueeze(0)
    expected = predict_probs(model, x).argmax(1).numpy()
    (labels,) = _run(_session(path), x)
    assert labels.shape == (1, 128, 256) and labels.dtype == np.int64
    assert (labels == expected).mean() >= 0.999


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.load is deprecated upstream
def test_cls_cli_export_decode_and_torchscript(tmp_path, capsys) -> None:
    from hrnet.cli import main

    path = tmp_path / "cls.onnx"
    assert (
        main(
            [
                "export",
                "hrnet_w18_small_v1",
                "--decode",
                "--topk",
                "3",
                "--input-size",
                "64",
                "64",
                "--dynamic-batch",
                "-o",
                str(path),
            ]
        )
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    card = ModelCard.from_dict(json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}[CARD_KEY]))
    assert card.task == "cls" and card.num_outputs == 1000 and card.labels[0]
    x = torch.randn(2, 3, 64, 64)
    scores, indices = _run(_session(path), x)
    assert scores.shape == (2, 3) and indices.dtype == np.int64
    assert np.all(np.diff(scores, axis=1) <= 0) and np.all(scores.sum(1) <= 1 + 1e-5)

    ts = tmp_path / "cls.pt"
    assert (
        main(
            [
                "export",
                "hrnet_w18_small_v1",
                "--format",
                "torchscript",
                "--input-size",
                "64",
                "64",
                "--json",
                "-o",
                str(ts),
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["max_rel_error"] < 1e-4
    extra = {CARD_KEY: ""}
    loaded = torch.jit.load(str(ts), _extra_files=extra)
    assert json.loads(extra[CARD_KEY])["model"] == "hrnet_w18_small_v1"
    assert loaded(x).shape == (2, 1000)


def test_export_bad_input_is_one_error_line(tmp_path, capsys) -> None:
    from hrnet.cli import main

    missing = tmp_path / "nope.safetensors"
    assert main(["export", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hrnet: error:") and "nope.safetensors" in err and "Traceback" not in err
    assert (
        main(
            [
                "export",
                "hrnet_w18_small_v1",
                "--opset",
                "13",
                "--input-size",
                "64",
                "64",
                "-o",
                str(tmp_path / "x.onnx"),
            ]
        )
        == 2
    )
    assert "opset" in capsys.readouterr().err


def test_relative_error_hand_computed_on_tensors_lists_and_dicts() -> None:
    from hrnet.runtime import relative_error

    a, b = torch.tensor([2.0, -4.0]), torch.tensor([2.0, -3.0])  # |diff| max 1, |a| max 4
    assert relative_error(a, b) == pytest.approx(0.25)
    assert relative_error([a, a], [a, b]) == pytest.approx(0.25)
    assert relative_error({"0": a, "1": a}, {"0": b, "1": a}) == pytest.approx(0.25)
    assert relative_error(a, b[:1]) == float("inf")
