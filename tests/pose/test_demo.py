"""The demo end to end (tiny sizes), its dataset layout finder, and the person-detector plumbing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hrnet.pose.demo import DemoSettings, find_coco_layout, run_demo
from hrnet.pose.detector import PersonDetector

DET_ARCH = "fasterrcnn_mobilenet_v3_large_320_fpn"  # the smallest torchvision two-stage detector


# ---------------------------------------------------------------------------------------------------- demo
def test_tiny_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = DemoSettings(
        num_train=12,
        num_val=4,
        image_size=(128, 96),
        input_size=(48, 64),
        epochs=1,
        batch_size=8,
        warmup_iters=0,
        workers=0,
        num_pictures=2,
        overrides={"width": 8, "stem_width": 16},
    )
    threads = torch.get_num_threads()
    start = time.perf_counter()
    assert run_demo(None, str(tmp_path / "run"), epochs=None, seed=0, settings=tiny) == 0
    assert time.perf_counter() - start < 60
    assert torch.get_num_threads() == threads  # the thread count is restored
    out = tmp_path / "run"
    for name in ("metrics.json", "metrics_detections.json"):
        metrics = json.loads((out / name).read_text())
        for key in ("AP", "AP50", "AP75", "APM", "APL", "AR"):
            assert isinstance(metrics[key], float) and -1.0 <= metrics[key] <= 1.0
    pictures = sorted((out / "predictions").glob("*.jpg"))
    assert [p.name for p in pictures] == ["val_1000001.jpg", "val_1000002.jpg"]
    assert Image.open(pictures[0]).size == (128, 96)
    assert Image.open(out / "training_curves.png").size == (1000, 400)
    for name in ("model_best.safetensors", "metrics.jsonl", "config.yaml", "last.pt", "results_val.json"):
        assert (out / "train" / name).is_file(), name
    results = json.loads((out / "train" / "results_val.json").read_text())
    assert all(len(r["keypoints"]) == 51 for r in results)
    printed = capsys.readouterr().out
    assert "AP50" in printed and "synthetic dataset" in printed


def test_tiny_demo_on_a_real_coco_folder(tmp_path: Path) -> None:
    """``--data``: the real COCO sample laid out as ``annotations/`` + ``val2017/`` trains and evaluates."""
    import shutil

    sample = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "coco_kpt_sample"
    if not (sample / "person_keypoints_sample.json").is_file():
        pytest.skip(f"COCO keypoint sample not found at {sample}")
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    shutil.copytree(sample / "images", root / "images" / "train2017")
    shutil.copytree(sample / "images", root / "images" / "val2017")
    for split in ("train", "val"):
        dest = root / "annotations" / f"person_keypoints_{split}2017.json"
        shutil.copy(sample / "person_keypoints_sample.json", dest)
    tiny = DemoSettings(
        input_size=(48, 64),
        batch_size=4,
        warmup_iters=0,
        workers=0,
        num_pictures=2,
        overrides={"width": 8, "stem_width": 16},
    )
    assert run_demo(str(root), str(tmp_path / "run"), epochs=1, seed=0, settings=tiny) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"AP", "AP50", "AP75", "APM", "APL", "AR"} <= set(metrics)
    assert not (tmp_path / "run" / "metrics_detections.json").exists()  # no detections file for real data
    names = sorted(p.name for p in (tmp_path / "run" / "predictions").glob("*.jpg"))
    first = sorted(
        json.loads((sample / "person_keypoints_sample.json").read_text())["images"][:2], key=lambda i: i["file_name"]
    )
    assert names == [i["file_name"] for i in first]


def test_find_coco_layout(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="person_keypoints_train"):
        find_coco_layout(root)
    for split in ("train", "val"):
        (root / "annotations" / f"person_keypoints_{split}2017.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no train image folder"):
        find_coco_layout(root)
    for split in ("train", "val"):
        (root / f"{split}2017").mkdir()
    found = find_coco_layout(root)
    assert found["val_ann"].name == "person_keypoints_val2017.json"
    assert found["val_images"] == root / "val2017"
    with pytest.raises(FileNotFoundError, match="not found"):
        find_coco_layout(tmp_path / "nothing")


def test_demo_with_a_real_coco_folder_fails_clearly_without_val(tmp_path: Path) -> None:
    root = tmp_path / "real"
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    (root / "annotations" / "person_keypoints_train.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no val annotations"):
        run_demo(str(root), str(tmp_path / "out"), epochs=1, seed=0)


# ------------------------------------------------------------------------------------------------ detector
def _detector_file(tmp_path: Path, favoured_label: int, name: str, wrap: bool = False) -> tuple[Path, torch.nn.Module]:
    """A randomly initialised torchvision detector whose classifier favours ``favoured_label``."""
    from torchvision.models import detection

    torch.manual_seed(0)
    model = detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.bias.zero_()
        model.roi_heads.box_predictor.cls_score.bias[favoured_label] = 12.0
    state = model.state_dict()
    if wrap:  # published files: frozen BN (no counters); training references: {"model": ...} and "module."
        kept = {f"module.{k}": v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        state = {"model": kept}
    path = tmp_path / name
    torch.save(state, path)
    return path, model.eval()


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)


def test_detector_returns_person_boxes(tmp_path: Path, image: np.ndarray) -> None:
    path, model = _detector_file(tmp_path, favoured_label=1, name="person.pth", wrap=True)
    det = PersonDetector(path, score_thr=0.5, arch=DET_ARCH)
    boxes = det(image)
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 5 and len(boxes) > 0
    assert np.all(boxes[:, 4] >= 0.5) and np.all(np.diff(boxes[:, 4]) <= 0)  # thresholded, best first
    assert np.all(boxes[:, 2] >= boxes[:, 0]) and np.all(boxes[:, 3] >= boxes[:, 1])
    assert np.all(boxes[:, [0, 2]] <= 160) and np.all(boxes[:, [1, 3]] <= 120) and np.all(boxes[:, :4] >= 0)
    # the same boxes as torchvision's own model, filtered by hand to label 1 and the threshold
    with torch.no_grad():
        raw = model([torch.from_numpy(image).permute(2, 0, 1).float() / 255])[0]
    keep = (raw["labels"] == 1) & (raw["scores"] >= 0.5)
    expect = torch.cat([raw["boxes"][keep], raw["scores"][keep, None]], 1).numpy()
    expect = expect[np.argsort(-expect[:, 4], kind="stable")]
    np.testing.assert_allclose(boxes, expect, rtol=1e-4, atol=1e-3)
    # a path works as well as an array
    Image.fromarray(image).save(tmp_path / "img.png")
    np.testing.assert_allclose(det(tmp_path / "img.png"), boxes, rtol=1e-4, atol=1e-3)


def test_detector_drops_other_classes(tmp_path: Path, image: np.ndarray) -> None:
    path, _ = _detector_file(tmp_path, favoured_label=2, name="bicycle.pth")
    boxes = PersonDetector(path, score_thr=0.3, arch=DET_ARCH)(image)
    assert boxes.shape == (0, 5)


def test_detector_weight_errors(tmp_path: Path) -> None:
    from torchvision.models import detection

    with pytest.raises(FileNotFoundError, match="missing.pth"):
        PersonDetector(tmp_path / "missing.pth", arch=DET_ARCH)
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="corrupt.pth"):
        PersonDetector(bad, arch=DET_ARCH)
    two = detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=2)
    torch.save(two.state_dict(), tmp_path / "two_classes.pth")
    with pytest.raises(ValueError, match=r"two_classes.pth.*shape mismatch"):
        PersonDetector(tmp_path / "two_classes.pth", arch=DET_ARCH)
    fitted = PersonDetector(tmp_path / "two_classes.pth", arch=DET_ARCH, num_classes=2, score_thr=0.9)
    assert fitted(np.zeros((64, 64, 3), np.uint8)).shape[1] == 5  # the right num_classes loads
    torch.save({"backbone.body.0.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"other.pth: the weights do not fit the .* architecture.*missing"):
        PersonDetector(tmp_path / "other.pth", arch=DET_ARCH)
    with pytest.raises(ValueError, match="unknown detector architecture"):
        PersonDetector(tmp_path / "other.pth", arch="yolo")
