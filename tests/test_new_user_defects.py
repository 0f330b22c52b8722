"""What a new user hit, each as the command they typed (``hrnet.cli.main``): its exit code, the line it
prints and the files it leaves.

1. ``--set`` / ``--config`` on predict with carded weights change test-time settings only, on all four tasks
   (before: the default config's network was built and the weights "did not fit").
2. A network without trained weights says so on the console once and in every result (``"weights": "random"``).
3. Scored box files honour ``--det-thr`` (default 0.5); ``--boxes`` with ``--detector`` is an error.
4. A URL input keeps its ``//``; the hub fails fast offline with the way around it; another detector family's
   file is named as such; an interrupted predict records it; (the demo AP range lives in docs/pose.md).

The carded weights are untrained tiny networks with hand-made cards: what is checked is which network and
which settings the command builds, not what it predicts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import hrnet
from hrnet.classification.api import Classifier
from hrnet.cli import main
from hrnet.detection.config import DetConfig
from hrnet.detection.model import build_model as build_det
from hrnet.detection.model import make_card as det_card
from hrnet.engine.config import load_config
from hrnet.inputs import as_frames
from hrnet.models.card import ModelCard
from hrnet.pose.api import PoseEstimator
from hrnet.pose.config import PoseConfig
from hrnet.pose.model import build_model as build_pose
from hrnet.pose.model import make_card as pose_card

REPO = Path(__file__).resolve().parents[1]
POSE_TINY = REPO / "configs" / "pose" / "sample" / "tiny.yaml"
PERSON = "coco_kpt_sample/images/000000196141.jpg"  # 33 person boxes in the detections file, 6 scored >= 0.5
DETECTIONS = "coco_kpt_sample/person_detection_results_AP_H_56_sample.json"
CITY = "cityscapes_sample/leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png"


def _pose_weights(path: Path, keypoint_set: str) -> Path:
    cfg = load_config(PoseConfig, POSE_TINY, [f"data.keypoint_set={keypoint_set}", "data.input_size=[48,64]"])
    torch.manual_seed(0)
    return hrnet.save_weights(build_pose(cfg, pretrained=False), path, card=pose_card(cfg))


@pytest.fixture(scope="module")
def carded(tmp_path_factory) -> dict[str, Path]:
    """Carded weights (tiny, untrained): pose with 17 (COCO) and 14 (CrowdPose) keypoints, a 3-class
    segmenter, a 3-class classifier."""
    root = tmp_path_factory.mktemp("carded")
    out = {"pose17": _pose_weights(root / "pose17.safetensors", "coco")}
    out["pose14"] = _pose_weights(root / "pose14.safetensors", "crowdpose")

    torch.manual_seed(0)
    seg = hrnet.create_model("seg_hrnet_w18_small_v1", num_classes=3, stage_blocks=(1, 1, 1))
    card = ModelCard(
        task="seg",
        model="seg_hrnet_w18_small_v1",
        num_outputs=3,
        labels=["road", "car", "other"],
        overrides={"stage_blocks": [1, 1, 1]},
        meta={"palette": [[128, 64, 128], [0, 0, 142], [90, 90, 90]], "flip_pairs": []},
        test={"protocol": "ours", "flip": False, "scales": [1.0]},
    )
    out["seg"] = hrnet.save_weights(seg, root / "seg.safetensors", card=card)

    cls = hrnet.create_model("hrnet_w18_small_v1", num_classes=3, width=8, stage_blocks=(1, 1, 1))
    card = ModelCard(
        task="cls",
        model="hrnet_w18_small_v1",
        num_outputs=3,
        labels=["a", "b", "c"],
        overrides={"width": 8, "stage_blocks": [1, 1, 1]},
        input_size=[64, 64],
        test={"crop_size": 64, "resize_size": 73},
    )
    out["cls"] = hrnet.save_weights(cls, root / "cls.safetensors", card=card)
    return out


@pytest.fixture(scope="module")
def carded_det(tmp_path_factory) -> Path:
    """Carded weights of a tiny untrained 2-class Faster R-CNN (person, car) with a small test size."""
    cfg = load_config(
        DetConfig,
        None,
        [
            "model.name=faster_rcnn_hrnet_w18",
            "model.overrides={stage_modules: [1, 1, 1]}",
            "model.options={rpn_pre_nms_top_n_test: 100, rpn_post_nms_top_n_test: 50}",
            "data.min_size=[128]",
            "data.max_size=213",
        ],
    )
    det = build_det(cfg, num_classes=2, pretrained=False)
    card = det_card(cfg, class_names=["person", "car"], category_ids=[1, 3])
    return hrnet.save_weights(det, tmp_path_factory.mktemp("det") / "det.safetensors", card=card)


def _run(argv: list[str], capsys) -> tuple[int, list[str]]:
    """Exit code and the lines on stderr (progress bars are off when stderr is not a terminal)."""
    capsys.readouterr()
    code = main(argv)
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _report(out: Path) -> dict:
    return json.loads((out / "run-001" / "results.json").read_text())


def _error(lines: list[str]) -> str:
    """The one line an error prints."""
    assert len(lines) == 1 and lines[0].startswith("hrnet: error:"), lines
    return lines[0]


# ------------------------------------------------------------------------------------------------------
# 1. --set / --config on top of carded weights


def test_pose_predict_set_applies_to_carded_weights(carded, shared_data, tmp_path, capsys):
    """The --help example (``test.flip_test=false``) on a 17- and a 14-keypoint carded model."""
    image = shared_data / PERSON
    for key, names in (("pose17", 17), ("pose14", 14)):
        out = tmp_path / key
        argv = ["pose", "predict", str(image), "--weights", str(carded[key]), "--set", "test.flip_test=false"]
        argv += ["--detector", "none"]
        code, lines = _run([*argv, "--out", str(out), "--device", "cpu", "--runtime", "eager"], capsys)
        assert code == 0 and lines[-1] == f"pose predict: 1 results from 1 inputs -> {out / 'run-001' / 'results.json'}"
        report = _report(out)
        # the card says flip_test true (the config default it was made with): --set turned it off
        assert report["flip_test"] is False and report["weights"] == str(carded[key])
        assert len(report["results"][0]["keypoint_names"]) == names
        assert report["keypoint_set"] == ("coco" if names == 17 else "crowdpose")
        assert "weights" not in report["results"][0]  # trained (carded) weights: no "random" mark


def test_pose_predict_set_that_changes_the_network_is_an_error(carded, shared_data, tmp_path, capsys):
    image = str(shared_data / PERSON)
    out = tmp_path / "out"
    for setting, why in (
        ("model.name=pose_hrnet_w48", "changes the network"),
        ("data.keypoint_set=mpii", "changes the network"),
        ("data.root=/data/coco", "not a predict setting"),
    ):
        code, lines = _run(
            ["pose", "predict", image, "--weights", str(carded["pose17"]), "--set", setting, "--out", str(out)], capsys
        )
        line = _error(lines)
        assert code == 2 and f"--set {setting}: {why}" in line and "only test.*" in line, line
        assert "pose17.safetensors (pose_hrnet_w18_small_v1, 17 keypoints)" in line
    assert not out.exists()  # nothing was run, nothing written


def test_pose_predict_config_applies_its_test_section_and_checks_the_network(carded, shared_data, tmp_path, capsys):
    image = str(shared_data / PERSON)
    # the training config of the 17-keypoint model with other test settings: they apply
    config = tmp_path / "test.yaml"
    config.write_text(POSE_TINY.read_text() + "  flip_test: false\n  dark: true\n")  # tiny.yaml ends in test:
    assert load_config(PoseConfig, config).test.dark is True
    out = tmp_path / "ok"
    code, _ = _run(
        ["pose", "predict", image, "--weights", str(carded["pose17"]), "--config", str(config)]
        + ["--out", str(out), "--device", "cpu", "--runtime", "eager", "--no-save", "--detector", "none"],
        capsys,
    )
    report = _report(out)
    assert code == 0 and report["flip_test"] is False and report["dark"] is True
    # the same config on the 14-keypoint weights would change the network: an error naming the key
    code, lines = _run(
        ["pose", "predict", image, "--weights", str(carded["pose14"]), "--config", str(config)]
        + ["--out", str(tmp_path / "bad")],
        capsys,
    )
    line = _error(lines)
    assert code == 2 and "data.keypoint_set 'coco (17 keypoints)' changes the network" in line
    assert "'crowdpose (14 keypoints)'" in line and not (tmp_path / "bad").exists()


def test_seg_predict_set_applies_to_carded_weights(carded, shared_data, tmp_path, capsys):
    image = str(shared_data / CITY)
    out = tmp_path / "seg"
    code, lines = _run(
        ["seg", "predict", image, "--weights", str(carded["seg"]), "--set", "test.flip=true"]
        + ["--out", str(out), "--device", "cpu", "--no-save"],
        capsys,
    )
    report = _report(out)
    assert code == 0 and report["flip"] is True and report["classes"] == ["road", "car", "other"]
    assert lines[-1].startswith("seg predict: 1 results from 1 inputs")
    code, lines = _run(
        ["seg", "predict", image, "--weights", str(carded["seg"]), "--set", "data.num_classes=19"]
        + ["--out", str(tmp_path / "bad")],
        capsys,
    )
    line = _error(lines)
    assert code == 2 and "--set data.num_classes=19: changes the network of the carded weights" in line
    assert "(seg_hrnet_w18_small_v1, 3 classes)" in line and not (tmp_path / "bad").exists()


def test_cls_predict_set_applies_to_carded_weights(carded, shared_data, tmp_path, capsys):
    image = str(sorted((shared_data / "imagenet_sample" / "images").iterdir())[0])
    out = tmp_path / "cls"
    code, _ = _run(
        ["cls", "predict", image, "--weights", str(carded["cls"]), "--set", "data.crop_size=32"]
        + ["--out", str(out), "--device", "cpu", "--no-save"],
        capsys,
    )
    report = _report(out)
    assert code == 0 and (report["crop_size"], report["resize_size"]) == (32, 73)  # crop set, resize the card's
    code, lines = _run(
        ["cls", "predict", image, "--weights", str(carded["cls"]), "--set", "model.width=48"]
        + ["--out", str(tmp_path / "bad")],
        capsys,
    )
    line = _error(lines)
    assert code == 2 and "--set model.width=48: changes the network of the carded weights" in line
    assert line.endswith("only test.*, data.crop_size, data.resize_size, data.interpolation settings apply")


def test_det_predict_set_applies_to_carded_weights(carded_det, shared_data, tmp_path, capsys):
    image = str(shared_data / PERSON)
    out = tmp_path / "det"
    code, _ = _run(
        ["det", "predict", image, "--weights", str(carded_det), "--set", "test.score_thresh=0.3"]
        + ["test.detections_per_img=7", "--out", str(out), "--device", "cpu", "--no-save"],
        capsys,
    )
    report = _report(out)
    assert code == 0 and (report["score_thresh"], report["detections_per_img"], report["min_size"]) == (0.3, 7, 128)
    assert report["classes"] == ["person", "car"] and len(report["results"][0]["detections"]) <= 7
    # a command-line flag wins over --set
    code, _ = _run(
        ["det", "predict", image, "--weights", str(carded_det), "--set", "test.score_thresh=0.3"]
        + ["--score-thr", "0.6", "--out", str(tmp_path / "flag"), "--device", "cpu", "--no-save"],
        capsys,
    )
    assert code == 0 and _report(tmp_path / "flag")["score_thresh"] == 0.6
    code, lines = _run(
        ["det", "predict", image, "--weights", str(carded_det), "--set", "model.overrides.width=48"]
        + ["--out", str(tmp_path / "bad")],
        capsys,
    )
    assert code == 2 and "--set model.overrides.width=48: changes the network" in _error(lines)


# ------------------------------------------------------------------------------------------------------
# 2. random weights are said, once, and recorded


def test_facade_with_a_bare_name_warns_once_and_marks_its_results(carded, shared_data, caplog):
    image, other = shared_data / PERSON, shared_data / "coco_kpt_sample/images/000000000785.jpg"
    with caplog.at_level("WARNING", logger="hrnet"):
        estimator = PoseEstimator(
            "pose_hrnet_w18_small_v1", input_size=(64, 48), device="cpu", runtime="eager", detector=None
        )
        results = [estimator(image), *estimator.predict([image, other])]
    warnings = [r.getMessage() for r in caplog.records if "random weights" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith(
        "random weights: pose_hrnet_w18_small_v1 has no trained weights; results are meaningless — pass --weights FILE"
    )
    assert [r.to_json()["weights"] for r in results] == ["random"] * 3
    caplog.clear()
    with caplog.at_level("WARNING", logger="hrnet"):
        trained = Classifier(carded["cls"], device="cpu")
        result = trained(image)
    assert not trained.random_weights and "weights" not in result.to_json()
    assert not [r for r in caplog.records if "random weights" in r.getMessage()]


@pytest.mark.parametrize(
    "task, model, image, extra",
    [
        ("pose", "pose_hrnet_w18_small_v1", PERSON, ["--input-size", "64", "48", "--detector", "none"]),
        ("seg", "seg_hrnet_w18_small_v1", CITY, []),
        ("cls", "hrnet_w18_small_v1", PERSON, []),
        ("det", "faster_rcnn_hrnet_w18", PERSON, ["--min-size", "96", "--max-size", "160"]),
    ],
)
def test_predict_with_model_name_only_says_random_weights(
    task, model, image, extra, shared_data, tmp_path, capsys, caplog
):
    out = tmp_path / task
    with caplog.at_level("WARNING", logger="hrnet"):
        code, _ = _run(
            [task, "predict", str(shared_data / image), "--model", model, "--out", str(out), "--device", "cpu"]
            + ["--no-save", *extra],
            capsys,
        )
    assert code == 0
    said = [r.getMessage() for r in caplog.records if "random weights:" in r.getMessage()]
    assert len(said) == 1 and f"{model} has no trained weights; results are meaningless" in said[0]
    report = _report(out)
    assert report["weights"] == "random" and [r["weights"] for r in report["results"]] == ["random"]


def test_pose_predict_config_without_weights_is_random_too(shared_data, tmp_path):
    """``--config`` alone builds the configured network (a module handed to the facade): still random. Run
    as the user runs it, so the console line is the real one (pytest takes over logging in-process)."""
    out = tmp_path / "pose"
    proc = subprocess.run(
        [sys.executable, "-m", "hrnet", "pose", "predict", str(shared_data / PERSON), "--config", str(POSE_TINY)]
        + ["--detector", "none"]
        + ["--out", str(out), "--device", "cpu", "--no-save", "--runtime", "eager"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    said = [line for line in proc.stderr.splitlines() if "random weights" in line]
    assert proc.returncode == 0 and len(said) == 1, proc.stderr
    assert said[0].endswith(
        "random weights: pose_hrnet_w18_small_v1 has no trained weights; results are meaningless — pass "
        "--weights FILE (Python: weights=FILE), e.g. a carded model_best.safetensors written by hrnet train"
    )
    report = _report(out)
    assert report["weights"] == "random" and report["results"][0]["weights"] == "random"


# ------------------------------------------------------------------------------------------------------
# 3. person boxes of a scored file: --det-thr, and not with --detector


def _people_scored(shared_data: Path, thr: float) -> int:
    """How many person boxes of 000000196141.jpg the detections file scores at least ``thr`` (read directly)."""
    dets = json.loads((shared_data / DETECTIONS).read_text())
    return sum(1 for d in dets if d["image_id"] == 196141 and d["category_id"] == 1 and d["score"] >= thr)


def test_scored_boxes_file_honours_det_thr_with_a_default(carded, shared_data, tmp_path, capsys):
    assert (_people_scored(shared_data, 0.0), _people_scored(shared_data, 0.5)) == (33, 6)
    base = ["pose", "predict", str(shared_data / PERSON), "--weights", str(carded["pose17"])]
    base += ["--boxes", str(shared_data / DETECTIONS), "--device", "cpu", "--no-save", "--runtime", "eager"]
    scores = [d["score"] for d in json.loads((shared_data / DETECTIONS).read_text())]
    assert len(scores) == 118  # the file covers the 4 sample images
    for thr, want in ((None, 6), ("0.9", _people_scored(shared_data, 0.9)), ("0", 33)):
        out = tmp_path / f"thr{thr}"
        code, lines = _run([*base, "--out", str(out), *(["--det-thr", thr] if thr else [])], capsys)
        report = _report(out)
        used = 0.5 if thr is None else float(thr)
        assert code == 0 and len(report["results"][0]["people"]) == want and report["det_thr"] == used, lines
        left_out = sum(1 for s in scores if s < used)  # over the whole file
        note = f"note: --boxes {shared_data / DETECTIONS}: {left_out} boxes scored below --det-thr {used:g} left out"
        assert (note in lines) == (left_out > 0), lines


def test_boxes_with_a_detector_is_an_error_and_the_help_says_so(carded, shared_data, tmp_path, capsys):
    out = tmp_path / "out"
    code, lines = _run(
        ["pose", "predict", str(shared_data / PERSON), "--weights", str(carded["pose17"])]
        + ["--boxes", str(shared_data / DETECTIONS), "--detector", str(tmp_path / "person.pth"), "--out", str(out)],
        capsys,
    )
    assert code == 2 and "--boxes and --detector both give the person boxes: pass one" in _error(lines)
    assert not out.exists()
    with pytest.raises(SystemExit) as stop:
        main(["pose", "predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert stop.value.code == 0
    assert "scored at least this (default 0.5; a box without a score counts as 1)" in text
    assert "not with --detector" in text and "not with --boxes" in text
    assert "Boxes scored below --det-thr (default 0.5, the detector's threshold too) are left out" in text


# ------------------------------------------------------------------------------------------------------
# 4. smaller points


def test_a_url_input_is_named_intact(carded, tmp_path, capsys):
    """A URL is a stream OpenCV opens (docs/video.md); one that cannot be opened (a closed local port: no
    network) is a bad input like an unreadable video: the summary, then one error line naming it whole."""
    url = "rtsp://127.0.0.1:1/x"
    code, lines = _run(
        ["pose", "predict", url, "--weights", str(carded["pose17"]), "--out", str(tmp_path / "o")]
        + ["--detector", "none"],
        capsys,
    )
    assert code == 2 and lines[-1] == f"hrnet: error: {url}: cannot open the stream (use --skip-bad to skip bad inputs)"
    (frame,) = as_frames("http://127.0.0.1:1/a.jpg")
    assert frame.error == "http://127.0.0.1:1/a.jpg: cannot open the stream"


def test_hub_fails_fast_offline_with_the_way_around(carded, shared_data, tmp_path):
    """An unreachable endpoint (a closed loopback port) and an empty cache: seconds, not huggingface_hub's
    ~30 s of retries, and the message says to download the file and pass it."""
    pytest.importorskip("huggingface_hub")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the socket is
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_CACHE": str(tmp_path / "hub")}
    env.pop("HF_HUB_OFFLINE", None)
    code = (
        "import contextlib, io, json, time\n"
        "import huggingface_hub\n"
        "from hrnet.cli import main\n"
        "from hrnet.models.sources import resolve_source\n"
        "t = time.perf_counter()\n"
        "try:\n"
        "    resolve_source('hf-hub:someone/missing')\n"
        "except FileNotFoundError as err:\n"
        "    message = str(err)\n"
        "seconds = time.perf_counter() - t\n"
        "err = io.StringIO()\n"
        "with contextlib.redirect_stderr(err):\n"
        f"    rc = main(['cls', 'predict', {str(shared_data / PERSON)!r}, '--model', 'hrnet_w18_small_v1',"
        f" '--weights', 'hub', '--out', {str(tmp_path / 'o')!r}])\n"
        "print(json.dumps({'seconds': seconds, 'message': message, 'rc': rc, 'err': err.getvalue()}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["seconds"] < 5, got
    hint = "download it yourself (http://127.0.0.1:{}/{}) and pass --model NAME --weights FILE"
    assert got["message"].startswith("hf-hub:someone/missing/model.safetensors: not in the local hub cache")
    assert hint.format(port, "someone/missing") in got["message"]
    lines = [line for line in got["err"].splitlines() if line.startswith("hrnet:")]
    assert got["rc"] == 2 and len(lines) == 1 and "pass --model NAME --weights FILE" in lines[0]
    assert not (tmp_path / "o").exists()


def test_another_detector_family_is_named_not_its_class_count(shared_data, tmp_path, capsys):
    """torchvision detectors' files (a few of their real keys and heads: the whole files are 80-160 MB)."""
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn, fasterrcnn_resnet50_fpn

    keep = ("backbone.body.conv1.", "backbone.body.layer1.0.", "backbone.body.layer2.0.", "backbone.body.0.")
    keep += ("rpn.head.", "roi_heads.box_predictor.")
    for name, build, family, key in (
        ("r50", fasterrcnn_resnet50_fpn, "ResNet", "backbone.body.layer2.0.conv1.weight"),
        ("mobilenet", fasterrcnn_mobilenet_v3_large_fpn, "MobileNet", "backbone.body.0.0.weight"),
    ):
        state = build(weights=None, weights_backbone=None).state_dict()
        path = tmp_path / f"{name}.pth"
        torch.save({k: v for k, v in state.items() if k.startswith(keep)}, path)
        code, lines = _run(
            ["det", "predict", str(shared_data / PERSON), "--model", "faster_rcnn_hrnet_w18", "--weights", str(path)]
            + ["--min-size", "96", "--out", str(tmp_path / "o"), "--device", "cpu"],
            capsys,
        )
        line = _error(lines)
        assert code == 2 and f"{path}: this file is a {family} detector (backbone key {key})" in line
        assert "not faster_rcnn_hrnet_w18" in line and "91" not in line and "classes" not in line


def test_an_interrupted_predict_records_it(carded, shared_data, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    for i, src in enumerate(sorted((shared_data / "imagenet_sample" / "images").iterdir())[:3]):
        Image.open(src).save(data / f"{i}.jpg")
    real = Classifier.predict_frames
    calls = []

    def stop_after_the_first_batch(self, frames, *args, **kwargs):
        calls.append(len(frames))
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(self, frames, *args, **kwargs)

    monkeypatch.setattr(Classifier, "predict_frames", stop_after_the_first_batch)
    out = tmp_path / "out"
    code, lines = _run(
        ["cls", "predict", str(data), "--weights", str(carded["cls"]), "--batch-size", "1"]
        + ["--out", str(out), "--device", "cpu"],
        capsys,
    )
    assert code == 130 and lines[-1] == "hrnet: interrupted"
    assert f"cls predict: 1 results from 3 inputs (interrupted) -> {out / 'run-001' / 'results.json'}" in lines
    report = _report(out)
    assert report["stopped_by"] == "interrupted" and report["done"] == 1
    assert [r["file"] for r in report["results"]] == ["0.jpg"] and (out / "run-001" / "0.jpg").is_file()
