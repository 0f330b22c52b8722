"""The pretrained zoo wired into the facades and the commands: what each does with no weights argument, every
form a weights argument takes, the person detector that comes with its weights, ``export --weights``, and
the one line an empty offline cache gives.

Tests never touch the network (``tests/conftest.py`` sets ``HRNET_OFFLINE=1`` and an empty ``HRNET_HOME``).
The ``zoo`` fixture puts tiny networks exactly where :mod:`hrnet.pretrained` keeps its converted files, as
``hrnet download`` leaves them, under entries that copy the real defaults' facts (metric, licence, card)
with small widths; the table's defaults point at them.

The default person detector of the tests is a torchvision detector whose box head is set by hand, so what
it finds is known without running it: every proposal scores ``softmax([0, 3])[1]`` for "person" and is
regressed to 62.5 times its size (torchvision's clamp of the size deltas), which the clip to the image turns
into the whole frame; NMS then leaves exactly one person, the box ``[0, 0, W, H]``. That proves the
default detector is found in the cache, run, and each of its boxes given one skeleton (named in
``results.json``); that several boxes give several skeletons is shown with a detector callable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import hrnet
from hrnet import pretrained
from hrnet.classification import Classifier
from hrnet.cli import main
from hrnet.detection import Detector
from hrnet.loader import model_from_card
from hrnet.models.card import read_card
from hrnet.models.download import DownloadError, cache_dir
from hrnet.pose import PoseEstimator
from hrnet.pose.detector import PersonDetector
from hrnet.segmentation import Segmenter

from .models.official_layout import official_pose, random_state

PHOTO = "coco_kpt_sample/images/000000196141.jpg"
PHOTO2 = "coco_kpt_sample/images/000000000785.jpg"
STREET = "cityscapes_sample/leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png"
PERSON_SCORE = math.exp(3) / (1 + math.exp(3))  # softmax([0, 3])[1]: the hand-set box head's person score

POSE = "pose_hrnet_w8.coco_test"
SEG = "seg_hrnet_w8.cityscapes_test"
DET = "faster_rcnn_hrnet_w8.coco_test"
CLS = "hrnet_w18_small_v1.imagenet_test"
PERSON = "fasterrcnn_mobilenet_v3_large_320_fpn.person_test"


def _entries() -> dict[str, pretrained.PretrainedEntry]:
    """Tiny copies of the real defaults: same facts (metric, licence, card settings), small networks."""
    e = pretrained.entry
    det = e("faster_rcnn_hrnet_w32.coco")
    det_card = {**det.card, "meta": {**det.card["meta"], "min_size": 128, "max_size": 192}}
    return {
        "pose": dataclasses.replace(e("pose_hrnet_w32.coco_256x192"), name=POSE, input_size=(64, 48), default=True),
        "seg": dataclasses.replace(e("seg_hrnet_w48.cityscapes"), name=SEG, default=True),
        "det": dataclasses.replace(det, name=DET, input_size=(128, 192), card=det_card, default=True),
        "cls": dataclasses.replace(e("hrnet_w18_small_v1.ms_in1k"), name=CLS, default=False),
        "person_detector": dataclasses.replace(e("keypointrcnn_resnet50_fpn.coco_v1"), name=PERSON),
    }


def _frame_detector() -> torch.nn.Module:
    """torchvision's smallest two-stage detector (person + background) with the box head set by hand: every
    proposal is a person scored ``PERSON_SCORE`` and regressed to the whole frame (see the module doc)."""
    from torchvision.models import detection

    torch.manual_seed(0)
    model = detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=2)
    predictor = model.roi_heads.box_predictor
    with torch.no_grad():
        predictor.cls_score.weight.zero_()
        predictor.cls_score.bias.copy_(torch.tensor([0.0, 3.0]))
        predictor.bbox_pred.weight.zero_()
        predictor.bbox_pred.bias.zero_()
        predictor.bbox_pred.bias[6:] = 50.0  # class 1: dw = dh = 50 / 5 = 10, clamped to log(1000 / 16)
    return model.eval()


@dataclasses.dataclass
class Zoo:
    entries: dict[str, pretrained.PretrainedEntry]
    files: dict[str, Path]


@pytest.fixture
def zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Zoo:
    """A cache holding the converted files of the tiny entries, and a table whose defaults are those."""
    monkeypatch.setenv("HRNET_HOME", str(tmp_path / "home"))
    entries = _entries()
    table = pretrained._load_table()
    hrnet_models = tuple(v for k, v in entries.items() if k != "person_detector")
    patched = dataclasses.replace(
        table,
        entries=table.entries + hrnet_models,
        detectors=table.detectors + (entries["person_detector"],),
        defaults={task: item.name for task, item in entries.items()},
    )
    monkeypatch.setattr(pretrained, "_load_table", lambda: patched)
    files = {}
    torch.manual_seed(0)
    for task, item in entries.items():
        card = pretrained.entry_card(item)
        model = _frame_detector() if task == "person_detector" else model_from_card(card)
        files[task] = hrnet.save_weights(model, pretrained.cached_file(item.name), card=card)
        assert pretrained.is_cached(item.name)
    return Zoo(entries, files)


def _report(out: Path) -> dict:
    return json.loads((out / "run-001" / "results.json").read_text())


def _stderr_lines(capsys: pytest.CaptureFixture) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------- the defaults


def test_pose_estimator_with_no_arguments_runs_the_default_model_and_detector(zoo, shared_data):
    photo = shared_data / PHOTO
    h, w = np.asarray(Image.open(photo)).shape[:2]
    est = PoseEstimator(device="cpu", runtime="eager")
    assert est.weights_info["name"] == POSE and est.weights_info["licence"] == "Apache-2.0"
    assert est.weights_info["metric"] == "AP 74.6" and est.weights_info["dataset"] == "COCO val2017"
    assert est.input_size == (64, 48) and est.flip_test is True  # the entry's card, not a guess
    res = est(photo)
    assert res.boxes_source == "detector" and len(res) == 1  # the hand-set detector finds one person
    np.testing.assert_allclose(res.boxes[0], [0, 0, w, h], atol=0.05)
    assert res.box_scores[0] == pytest.approx(PERSON_SCORE, abs=1e-5)
    assert res.keypoints.shape == (1, 17, 2) and res.scores.shape == (1, 17)
    assert est.detector_info["name"] == PERSON and est.detector_info["licence"] == "BSD-3-Clause"
    assert not np.array_equal(res.plot(), res.image)  # the skeleton is drawn

    # one skeleton per box, for several boxes: a detector callable that returns three
    boxes = np.array([[10, 20, 110, 220, 0.9], [200, 40, 300, 300, 0.8], [400, 50, 470, 250, 0.7]], np.float32)
    res = est(photo, detector=lambda rgb: boxes)
    assert len(res) == 3 and res.keypoints.shape == (3, 17, 2)
    np.testing.assert_allclose(np.c_[res.boxes, res.box_scores], boxes)
    for (x1, y1, x2, y2, _), kp in zip(boxes, res.keypoints):
        # each skeleton lies in its own box's crop: the box grown to the 48:64 crop shape, then by 1.25
        bw, bh = x2 - x1, y2 - y1
        bw, bh = (bw, bw / 0.75) if bw > 0.75 * bh else (bh * 0.75, bh)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        assert np.all(np.abs(kp[:, 0] - cx) <= 1.25 * bw / 2 + 1) and np.all(np.abs(kp[:, 1] - cy) <= 1.25 * bh / 2 + 1)


def test_pose_predict_with_no_flags(zoo, shared_data, tmp_path, capsys):
    photos = [shared_data / PHOTO, shared_data / PHOTO2]
    out = tmp_path / "out"
    assert main(["pose", "predict", *map(str, photos), "--out", str(out)]) == 0
    lines = _stderr_lines(capsys)
    assert f"weights: {POSE} (AP 74.6, COCO val2017; licence Apache-2.0)" in lines
    assert f"detector: {PERSON} (person box AP 54.6, COCO val2017; licence BSD-3-Clause)" in lines
    report = _report(out)
    assert report["weights"] == POSE and report["boxes"] == "detector" and report["notes"] == []
    assert report["weights_info"]["name"] == POSE and report["weights_info"]["metric"] == "AP 74.6"
    assert report["weights_info"]["url"] == zoo.entries["pose"].urls[0]
    assert report["detector"]["name"] == PERSON and report["detector"]["licence"] == "BSD-3-Clause"
    for photo, record in zip(photos, report["results"]):
        h, w = np.asarray(Image.open(photo)).shape[:2]
        assert record["boxes_source"] == "detector" and len(record["people"]) == 1
        np.testing.assert_allclose(record["people"][0]["bbox"], [0, 0, w, h], atol=0.05)
        assert len(record["people"][0]["keypoints"]) == 17 * 3
        assert (out / "run-001" / record["output"][0]).is_file()  # the picture with the skeleton


def test_the_other_tasks_with_no_flags(zoo, shared_data, tmp_path, capsys):
    street, photo = shared_data / STREET, shared_data / PHOTO
    runs = {
        "seg": (street, SEG, "mIoU 80.9, Cityscapes val; licence MIT"),
        "det": (photo, DET, "box AP 40.2, COCO val2017; licence Apache-2.0"),
        "cls": (photo, CLS, "top-1 72.3, ImageNet val; licence MIT"),
    }
    for task, (image, name, facts) in runs.items():
        out = tmp_path / task
        assert main([task, "predict", str(image), "--out", str(out), "--no-save"]) == 0, task
        assert f"weights: {name} ({facts})" in _stderr_lines(capsys), task
        report = _report(out)
        assert report["weights"] == name and report["weights_info"]["name"] == name, task
        assert "weights" not in report["results"][0], task  # trained weights: no "random" mark
    assert _report(tmp_path / "seg")["protocol"] == "official-cityscapes"  # the entry's official protocol
    assert _report(tmp_path / "det")["min_size"] == 128  # the entry's card decides the test size
    # the facades with no model argument: the same defaults
    assert Segmenter(device="cpu").weights_info["name"] == SEG
    assert Detector(device="cpu").weights_info["name"] == DET
    assert Classifier(device="cpu", runtime="eager").weights_info["name"] == CLS


def test_bare_names_stay_random_and_pretrained_takes_the_default_tag(zoo, caplog):
    with caplog.at_level("WARNING", logger="hrnet"):
        est = PoseEstimator("pose_hrnet_w8", device="cpu", detector=None)
    assert est.random_weights and est.weights_info is None
    assert any("random weights: pose_hrnet_w8" in r.getMessage() for r in caplog.records)
    assert PoseEstimator("pose_hrnet_w8", pretrained=True, device="cpu").weights_info is not None
    model = hrnet.create_model("pose_hrnet_w8", pretrained=True)  # the default tag of the (patched) table
    assert model.card.train["weights"]["entry"] == POSE
    reference = hrnet.load_model(zoo.files["pose"])
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    assert hrnet.load_model(POSE).card == reference.card  # a zoo name is a weights argument everywhere
    with pytest.raises(ValueError, match="no pretrained weights for 'pose_hrnet_w18'"):
        hrnet.create_model("pose_hrnet_w18", pretrained=True)
    with pytest.raises(ValueError, match=rf"did you mean {POSE}"):
        PoseEstimator("pose_hrnet_w8.coco_tset", device="cpu")
    with pytest.raises(ValueError, match=rf"{SEG} are 'seg' weights, not 'pose' weights"):
        PoseEstimator(SEG, device="cpu")
    with pytest.raises(ValueError, match=rf"{PERSON} is a torchvision person detector"):
        Detector(PERSON, device="cpu")


# -------------------------------------------------------------------------------- every weights form


def test_zoo_name_carded_file_and_uncarded_file_beside_a_name(zoo, shared_data, tmp_path):
    photo = shared_data / PHOTO
    box = [[150.0, 30.0, 420.0, 420.0]]
    by_name = PoseEstimator(POSE, device="cpu", runtime="eager", detector=None)(photo, boxes=box)
    by_file = PoseEstimator(zoo.files["pose"], device="cpu", runtime="eager", detector=None)(photo, boxes=box)
    np.testing.assert_array_equal(by_name.keypoints, by_file.keypoints)
    # an uncarded file (the tensors of the zoo's file, saved as a plain torch file) beside its model name
    state = hrnet.read_state_dict(zoo.files["cls"])
    torch.save(state, tmp_path / "plain.pth")
    assert read_card(tmp_path / "plain.pth") is None
    plain = Classifier("hrnet_w18_small_v1", weights=tmp_path / "plain.pth", device="cpu", runtime="eager")
    zooed = Classifier(CLS, device="cpu", runtime="eager")
    assert plain.weights_info is None and zooed.weights_info["name"] == CLS
    assert [s.index for s in plain(photo).top] == [s.index for s in zooed(photo).top]
    # the command line: --weights NAME, and --model NAME --weights FILE
    for argv in (["--weights", CLS], ["--model", "hrnet_w18_small_v1", "--weights", str(tmp_path / "plain.pth")]):
        out = tmp_path / f"cls{len(argv)}"
        assert main(["cls", "predict", str(photo), *argv, "--out", str(out), "--no-save", "--runtime", "eager"]) == 0
        assert _report(out)["results"][0]["top"][0]["index"] == zooed(photo).top[0].index


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the standard library's name
        pass


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A folder served on 127.0.0.1 (its base URL and the folder); the network is allowed for it."""
    root = tmp_path / "served"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Quiet(*a, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.delenv("HRNET_OFFLINE", raising=False)
    monkeypatch.delenv("HRNET_MIRROR", raising=False)
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_url_with_sha256_and_hub_name(zoo, server, shared_data, tmp_path, monkeypatch):
    base, root = server
    photo = shared_data / PHOTO
    served = root / "w" / "pose.safetensors"
    served.parent.mkdir()
    served.write_bytes(zoo.files["pose"].read_bytes())
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    box = [[150.0, 30.0, 420.0, 420.0]]
    by_url = PoseEstimator(f"{base}/w/pose.safetensors#sha256={digest}", device="cpu", runtime="eager", detector=None)
    by_name = PoseEstimator(POSE, device="cpu", runtime="eager", detector=None)
    np.testing.assert_array_equal(by_url(photo, boxes=box).keypoints, by_name(photo, boxes=box).keypoints)
    assert by_url.weights_info["name"] == POSE  # the file's card says where it came from
    (root / "w" / "other.safetensors").write_bytes(served.read_bytes())
    wrong = "0" * 64
    with pytest.raises(ValueError, match="sha256 mismatch"):
        PoseEstimator(f"{base}/w/other.safetensors#sha256={wrong}", device="cpu", detector=None)
    # the same file as a command-line --weights URL
    out = tmp_path / "url"
    argv = ["pose", "predict", str(photo), "--weights", f"{base}/w/pose.safetensors#sha256={digest}"]
    assert main([*argv, "--detector", "none", "--out", str(out), "--no-save", "--runtime", "eager"]) == 0
    assert _report(out)["weights"].endswith(f"#sha256={digest}")

    # hf-hub:org/repo from the hub client's cache (filled by hand as the client lays it out; offline)
    from huggingface_hub import constants

    hub = tmp_path / "hub"
    snapshot = hub / "models--tiny--cls" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (hub / "models--tiny--cls" / "refs").mkdir()
    (hub / "models--tiny--cls" / "refs" / "main").write_text("a" * 40)
    (snapshot / "model.safetensors").write_bytes(zoo.files["cls"].read_bytes())
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    by_hub = Classifier("hf-hub:tiny/cls", device="cpu", runtime="eager")
    assert [s.index for s in by_hub(photo).top] == [s.index for s in Classifier(CLS, device="cpu")(photo).top]


def test_export_a_name_with_an_uncarded_official_file(zoo, tmp_path, capsys):
    """``hrnet export NAME --weights FILE``: an official-layout pose file (key names and shapes of the official
    repository, tests/models/official_layout.py) exported with the task's default card of that name."""
    state = random_state(official_pose(8), seed=3, scale=0.1, batches=5)
    torch.save(state, tmp_path / "official.pth")
    onnx_file = tmp_path / "w8.onnx"
    argv = ["export", "pose_hrnet_w8", "--weights", str(tmp_path / "official.pth"), "-o", str(onnx_file), "--json"]
    assert main([*argv, "--input-size", "64", "48"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "pose_hrnet_w8" and onnx_file.is_file()
    assert summary["max_rel_error"] < 1e-4  # the written graph computes what the official tensors define
    from hrnet.export import load_source

    model, card = load_source("pose_hrnet_w8", weights=tmp_path / "official.pth")
    assert card.num_outputs == 17 and all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    # a zoo name exports as it is; --weights beside weights, or an unknown name, is one line
    assert main(["export", POSE, "-o", str(tmp_path / "zoo.onnx"), "--no-check"]) == 0
    assert main(["export", POSE, "--weights", str(tmp_path / "official.pth")]) == 2
    assert "give --weights only beside a model name" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- the person detector


def test_person_detector_entries_are_torchvisions_own_facts():
    """URL, digest prefix, box AP and parameter count of each person detector, against the weights enums of
    the installed torchvision (the source the table names)."""
    from torchvision.models import detection

    enums = {
        "keypointrcnn_resnet50_fpn": detection.KeypointRCNN_ResNet50_FPN_Weights.COCO_V1,
        "fasterrcnn_resnet50_fpn": detection.FasterRCNN_ResNet50_FPN_Weights.COCO_V1,
        "fasterrcnn_mobilenet_v3_large_fpn": detection.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1,
        "fasterrcnn_mobilenet_v3_large_320_fpn": detection.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1,
    }
    assert sorted(e.model for e in pretrained.PERSON_DETECTORS) == sorted(enums)
    assert pretrained.task_default("person_detector").name == "keypointrcnn_resnet50_fpn.coco_v1"
    for item in pretrained.PERSON_DETECTORS:
        weights = enums[item.model]
        assert item.urls == (weights.url,) and item.layout == "torchvision" and item.task == "det", item.name
        assert weights.url.endswith(f"-{item.sha256}.pth"), item.name  # torch.hub's sha256-prefix naming
        assert item.metric.value == weights.meta["_metrics"]["COCO-val2017"]["box_map"], item.name
        assert pretrained.param_count(item) == weights.meta["num_params"], item.name
        card = pretrained.entry_card(item)
        assert card.labels == weights.meta["categories"][1:], item.name  # label 0 is the background
    names = [r["name"] for r in pretrained.pretrained_table("det")]
    assert "keypointrcnn_resnet50_fpn.coco_v1" in names and "faster_rcnn_hrnet_w32.coco" in names


def test_a_torchvision_file_converts_as_torchvision_loads_it(zoo, tmp_path, monkeypatch, shared_data):
    """An upstream-layout torchvision file (frozen batch norm: no counters; the RPN conv under its pre-0.13
    name) served through the loopback mirror: the converted file holds what torchvision's own loading makes
    of it, tensor for tensor, and the person detector built from it finds what torchvision's model finds."""
    from torchvision.models import detection

    reference = _frame_detector()
    upstream = {k: v for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    for leaf in ("weight", "bias"):
        upstream[f"rpn.head.conv.{leaf}"] = upstream.pop(f"rpn.head.conv.0.0.{leaf}")
    root = tmp_path / "mirror"
    (root / "models").mkdir(parents=True)
    torch.save(upstream, root / "models" / "frame-0000.pth")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Quiet(*a, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("HRNET_MIRROR", f"http://127.0.0.1:{httpd.server_address[1]}")
    monkeypatch.delenv("HRNET_OFFLINE")
    try:
        item = dataclasses.replace(
            zoo.entries["person_detector"],
            name="fasterrcnn_mobilenet_v3_large_320_fpn.upstream_test",
            urls=("https://download.pytorch.org/models/frame-0000.pth",),
            sha256=hashlib.sha256((root / "models" / "frame-0000.pth").read_bytes()).hexdigest(),
        )
        converted = pretrained.resolve_entry(item, progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()
    loaded = detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=2)
    loaded.load_state_dict(upstream, strict=False)  # torchvision's hooks rename the RPN conv
    theirs = loaded.state_dict()
    ours = load_file(str(converted))
    assert set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in theirs)
    card = read_card(converted)
    assert card.meta["framework"] == "torchvision" and card.train["weights"]["layout"] == "torchvision"

    image = np.asarray(Image.open(shared_data / PHOTO).convert("RGB"))
    with torch.no_grad():
        raw = loaded.eval()([torch.from_numpy(image).permute(2, 0, 1).float() / 255])[0]
    keep = raw["scores"] >= 0.5
    expect = torch.cat([raw["boxes"][keep], raw["scores"][keep, None]], 1).numpy()
    got = PersonDetector(converted, score_thr=0.5, device="cpu")(image)  # lean: no BN, raised threshold
    np.testing.assert_allclose(got, expect, atol=1e-3)
    assert len(got) == 1


def test_detector_flag_takes_none_a_zoo_name_and_a_file(zoo, shared_data, tmp_path, capsys):
    photo = str(shared_data / PHOTO)
    common = ["--out", "OUT", "--no-save", "--runtime", "eager"]
    for label, flag in (("none", "none"), ("name", PERSON), ("file", str(zoo.files["person_detector"]))):
        out = tmp_path / label
        argv = ["pose", "predict", photo, "--detector", flag, *[str(out) if a == "OUT" else a for a in common]]
        assert main(argv) == 0, label
        record = _report(out)["results"][0]
        if label == "none":
            assert record["boxes_source"] == "whole image" and _report(out)["detector"] is None
        else:
            assert record["boxes_source"] == "detector" and len(record["people"]) == 1
            assert _report(out)["detector"]["name"] == PERSON  # the file's card names its entry
    capsys.readouterr()


# ------------------------------------------------------------------------------------------ offline


def test_offline_with_an_empty_cache_is_one_line_with_url_and_place(tmp_path, shared_data, capsys, monkeypatch):
    monkeypatch.setenv("HRNET_HOME", str(tmp_path / "empty"))
    for task, image, name in (
        ("pose", PHOTO, "pose_hrnet_w32.coco_256x192"),
        ("seg", STREET, "seg_hrnet_w48.cityscapes"),
        ("det", PHOTO, "faster_rcnn_hrnet_w32.coco"),
    ):
        item = pretrained.entry(name)
        out = tmp_path / task
        assert main([task, "predict", str(shared_data / image), "--out", str(out)]) == 2, task
        lines = _stderr_lines(capsys)
        assert len(lines) == 1 and lines[0].startswith("hrnet: error: "), lines
        place = cache_dir() / "downloads" / item.urls[0].rsplit("/", 1)[1]
        assert name in lines[0] and item.urls[0] in lines[0] and str(place) in lines[0], lines
        assert not out.exists()


def test_offline_without_the_detector_names_the_detector(zoo, tmp_path, shared_data, capsys):
    zoo.files["person_detector"].unlink()
    out = tmp_path / "out"
    assert main(["pose", "predict", str(shared_data / PHOTO), "--out", str(out)]) == 2
    line = _stderr_lines(capsys)[-1]
    item = zoo.entries["person_detector"]
    assert line.startswith("hrnet: error: ") and PERSON in line and item.urls[0] in line
    # with boxes, or with --detector none, no detector is needed
    assert main(["pose", "predict", str(shared_data / PHOTO), "--detector", "none", "--out", str(out)]) == 0


def test_offline_hub_entries_never_ask_the_hub(tmp_path, monkeypatch):
    """HRNET_OFFLINE holds for the entries fetched through the Hugging Face client too: its cache or one line."""
    from huggingface_hub import constants

    monkeypatch.setenv("HRNET_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise AssertionError("the network was asked")

    monkeypatch.setattr("socket.create_connection", no_network)
    item = pretrained.entry("hrnet_w18.ms_in1k")
    with pytest.raises(DownloadError) as err:
        pretrained.resolve(item.name, progress=False)
    assert item.name in str(err.value) and item.urls[0] in str(err.value) and "\n" not in str(err.value)
