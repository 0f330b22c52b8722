"""``Detector`` / ``DetResult`` and ``hrnet det train | eval | predict | check-data`` on real COCO images.

One tiny detector is trained for one step by ``hrnet det train`` (a carded ``model_best.safetensors``);
everything else rebuilds it from that file alone. Truths: the raw torchvision-style model, the annotation
file's own category ids and names, pycocotools on ground truth written as results, and the pose task's
person boxes against the detector's.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import hrnet
from hrnet.cli import main
from hrnet.detection.api import Detector, DetResult
from hrnet.detection.datasets import CocoDetection
from hrnet.detection.evaluation import STAT_NAMES, evaluate_results
from hrnet.detection.labels import COCO_CATEGORY_IDS, COCO_CLASSES, default_classes
from hrnet.detection.transforms import to_tensor
from hrnet.io import read_image
from hrnet.pose.detector import PersonDetector

from .conftest import REPO, subset_json

FIT = REPO / "configs" / "det" / "sample" / "fit.yaml"
POSE_TINY = REPO / "configs" / "pose" / "sample" / "tiny.yaml"
IMAGES = ("000000391895.jpg", "000000522418.jpg")  # the first two images of the sample (640x360, 640x480)


def _sets(ann: Path, images: Path) -> list[str]:
    """Overrides that make the sample recipe tiny: 2 images, shorter side 128, a 32-channel pyramid."""
    return [
        "model.overrides={stage_modules: [1, 1, 1]}",
        "model.options={neck_channels: 32, rpn_pre_nms_top_n_train: 200, rpn_post_nms_top_n_train: 100, "
        "rpn_pre_nms_top_n_test: 100, rpn_post_nms_top_n_test: 30, box_batch_size_per_image: 32}",
        f"data.root={ann.parent}",
        f"data.train_ann={ann.name}",
        f"data.val_ann={ann.name}",
        f"data.train_images={images}",
        f"data.val_images={images}",
        "data.min_size=[128]",
        "data.max_size=160",
        "train.epochs=1",
        "train.eval_every=1",
        "test.score_thresh=0.0",
        "test.detections_per_img=10",
    ]


@pytest.fixture(scope="module")
def run(det_dir, tmp_path_factory):
    """``hrnet det train`` on 2 sample images for one step: (weights, overrides, annotation file, images)."""
    root = tmp_path_factory.mktemp("det")
    ann = subset_json(det_dir / "instances_sample.json", root / "two.json", 2)
    sets = _sets(ann, det_dir / "images")
    code = main(["det", "train", "--config", str(FIT), "--out", str(root / "run"), "--device", "cpu", "--set", *sets])
    assert code == 0
    return root / "run" / "model_best.safetensors", sets, ann, det_dir / "images"


@pytest.fixture(scope="module")
def file_categories(det_dir):
    """id -> name of the annotation file itself (the independent truth for the mapping back)."""
    data = json.loads((det_dir / "instances_sample.json").read_text())
    return {c["id"]: c["name"] for c in data["categories"]}


def test_detector_rebuilds_from_its_card(run, det_dir, file_categories):
    weights, _, _, images = run
    det = Detector(weights, device="cpu")
    assert det.card.task == "det" and det.card.model == "faster_rcnn_hrnet_w18_small_v1"
    assert det.class_names == [file_categories[i] for i in sorted(file_categories)]
    assert det.category_ids == sorted(file_categories) and det.category_ids[-1] == 90  # COCO's ids have gaps
    # the card's test settings (not the defaults 0.05 / 100 / 800 / 1333)
    assert det.test == {
        "score_thresh": 0.0,
        "nms_thresh": 0.5,
        "detections_per_img": 10,
        "min_size": 128,
        "max_size": 160,
    }
    path = images / IMAGES[0]
    res = det(path)
    with torch.no_grad():
        raw = hrnet.load_model(weights)([to_tensor(read_image(path))])[0]
    assert 0 < len(res) == len(raw["boxes"]) <= 10
    np.testing.assert_allclose(res.boxes, raw["boxes"].numpy(), atol=1e-4)
    np.testing.assert_allclose(res.scores, raw["scores"].numpy(), atol=1e-6)
    np.testing.assert_array_equal(res.labels, raw["labels"].numpy())
    assert res.image.shape == (360, 640, 3) and res.path == str(path) and res.masks is None

    out = res.to_json()
    assert (out["file"], out["width"], out["height"]) == (str(path), 640, 360)
    assert len(out["detections"]) == len(res)
    for d, box, lab, score in zip(out["detections"], res.boxes, res.labels, res.scores):
        assert set(d) == {"image_id", "category_id", "bbox", "score", "category_name"}
        assert d["image_id"] == 391895  # from the COCO file name, as pose's results
        assert d["category_id"] == sorted(file_categories)[lab - 1]
        assert d["category_name"] == file_categories[d["category_id"]]
        x1, y1, x2, y2 = box
        np.testing.assert_allclose(d["bbox"], [x1, y1, x2 - x1, y2 - y1], atol=2e-3)
        assert d["score"] == pytest.approx(float(score), abs=1e-5)
    json.dumps(out)  # plain data

    # the person-box callable of pose: the "person" detections only, as (N, 5), best first, thresholded
    boxes = det.person_boxes(path, score_thr=0.0)
    person = res.labels == 1
    assert boxes.shape == (int(person.sum()), 5) and boxes.dtype == np.float32
    np.testing.assert_allclose(np.sort(boxes[:, 4]), np.sort(res.scores[person]), atol=1e-6)
    assert np.all(np.diff(boxes[:, 4]) <= 0)
    assert len(det.person_boxes(path, score_thr=1.0)) == 0
    with pytest.raises(ValueError, match="no 'giraffes' class"):
        det.person_boxes(path, class_name="giraffes")


def test_predict_batches_like_single_images(run):
    weights, _, _, images = run
    det = Detector(weights, device="cpu", batch_size=2)
    a = read_image(images / IMAGES[0])
    b = np.ascontiguousarray(a[:, ::-1])  # same size: a batch needs no extra padding
    single = [det(a), det(b)]
    batched = det.predict([a, b], batch_size=2)
    for s, m in zip(single, batched):
        np.testing.assert_allclose(m.boxes, s.boxes, atol=1e-3)
        np.testing.assert_allclose(m.scores, s.scores, atol=1e-5)
        np.testing.assert_array_equal(m.labels, s.labels)
    # images of other sizes and files: order, paths and sizes kept
    results = det.predict([images / IMAGES[1], a], batch_size=2)
    assert [r.image.shape for r in results] == [(480, 640, 3), (360, 640, 3)]
    assert results[0].path.endswith(IMAGES[1]) and results[1].path is None
    assert all(len(r) and r.boxes[:, 2].max() <= r.image.shape[1] + 1e-3 for r in results)


def test_runtimes_fused_by_default_and_equal_to_eager(run):
    """``auto`` folds the backbone BatchNorms (``torch``); detections equal the eager model's; a module handed
    in is left as it was; fixed-shape runtimes are refused with one clear message."""
    weights, _, _, images = run
    module = hrnet.load_model(weights).eval()
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules())
    fast, eager = Detector(module, device="cpu"), Detector(module, device="cpu", runtime="eager")
    assert (fast.runtime, eager.runtime) == ("torch", "eager") and eager.model is module
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules()) == n_bn > 0
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.model.modules())
    path = images / IMAGES[1]
    a, b = fast(path), eager(path)
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-2)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
    np.testing.assert_array_equal(a.labels, b.labels)
    for runtime in ("compile", "onnx"):
        with pytest.raises(ValueError, match=f"runtime '{runtime}' is not available for detection"):
            Detector(module, device="cpu", runtime=runtime)


def test_ground_truth_as_results_scores_one(det_dir):
    """DetResult.to_coco (labels -> the file's category ids, masks -> RLE) scored by pycocotools: AP 1."""
    data = CocoDetection(det_dir / "instances_sample.json", det_dir / "images", masks=True)
    results = []
    for i in range(len(data)):
        t = data.target(i)
        n = len(t["boxes"])
        res = DetResult(
            np.zeros((data.image_info(i)["height"], data.image_info(i)["width"], 3), np.uint8),
            t["boxes"].numpy(),
            np.ones(n, np.float32),
            t["labels"].numpy(),
            data.class_names,
            data.category_ids,
            masks=t["masks"].numpy().astype(bool),
        )
        results += res.to_coco(image_id=int(t["image_id"]))
    assert {r["category_id"] for r in results} <= set(data.category_ids) and max(r["category_id"] for r in results) > 80
    metrics = evaluate_results(data.coco, results, ("bbox", "segm"))
    assert metrics["bbox_AP"] == pytest.approx(1.0) and metrics["segm_AP"] == pytest.approx(1.0)


def test_plot_draws_boxes_labels_and_masks(tmp_path):
    image = np.zeros((100, 120, 3), np.uint8)
    masks = np.zeros((2, 100, 120), bool)
    masks[0, 30:60, 30:70] = True
    res = DetResult(
        image,
        np.array([[20, 20, 80, 80], [90, 5, 110, 25]], np.float32),
        np.array([0.9, 0.1], np.float32),
        np.array([1, 2]),
        ["person", "car"],
        [1, 3],
        masks=masks,
    )
    pic = res.plot()
    assert pic.shape == image.shape and pic.dtype == np.uint8 and not image.any()  # a copy
    assert pic[50, 20].any() and pic[80, 50].any()  # the box outline
    assert pic[45, 50].any() and not pic[45, 10].any()  # mask inside, background outside
    assert not pic[15, 100].any()  # the 0.1 detection is below the drawing threshold ...
    assert res.plot(score_thr=0.0)[15, 90].any()  # ... unless asked for
    assert res.names == ["person", "car"]
    written = res.save(tmp_path / "out.png")
    assert written == [tmp_path / "out.png"] and read_image(written[0]).shape == image.shape


def test_cli_predict_from_the_card_alone(run, tmp_path):
    weights, _, _, images = run
    code = main(
        [
            "det",
            "predict",
            str(images / IMAGES[0]),
            str(images / IMAGES[1]),
            "--weights",
            str(weights),
            "--out",
            str(tmp_path / "pred"),
            "--device",
            "cpu",
            "--batch-size",
            "1",
        ]
    )  # padding-free
    assert code == 0
    run_dir = tmp_path / "pred" / "run-001"
    report = json.loads((run_dir / "results.json").read_text())
    assert report["task"] == "det" and report["model"] == "faster_rcnn_hrnet_w18_small_v1"
    assert report["done"] == report["inputs"] == 2 and len(report["classes"]) == 80
    assert (report["score_thresh"], report["detections_per_img"], report["min_size"]) == (0.0, 10, 128)
    assert report["runtime"] == "torch"  # auto: the BatchNorm-folded detector
    det = Detector(weights, device="cpu")
    for rec, name in zip(report["results"], IMAGES):
        assert rec["file"] == name and rec["output"] == [name] and (run_dir / name).is_file()
        expect = det(images / name).to_json()["detections"]
        assert [d["category_id"] for d in rec["detections"]] == [d["category_id"] for d in expect]
        np.testing.assert_allclose([d["bbox"] for d in rec["detections"]], [d["bbox"] for d in expect], atol=1e-2)


def test_cli_eval_writes_the_12_coco_numbers(run, tmp_path, capsys):
    weights, sets, ann, _ = run
    out, res = tmp_path / "metrics.json", tmp_path / "results.json"
    code = main(
        [
            "det",
            "eval",
            "--config",
            str(FIT),
            "--weights",
            str(weights),
            "--json",
            str(out),
            "--results",
            str(res),
            "--device",
            "cpu",
            "--set",
            *sets,
        ]
    )
    assert code == 0
    metrics = json.loads(out.read_text())
    assert list(metrics) == [f"bbox_{n}" for n in STAT_NAMES]  # Faster R-CNN: boxes only
    printed = capsys.readouterr().out
    assert "bbox" in printed and "AP50" in printed
    # the numbers are pycocotools' own on the written results
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    results = json.loads(res.read_text())
    assert results and {r["image_id"] for r in results} <= {391895, 522418}
    gt = COCO(str(ann))
    ev = COCOeval(gt, gt.loadRes(results), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert [metrics[f"bbox_{n}"] for n in STAT_NAMES] == pytest.approx(list(ev.stats))


def test_mismatching_num_classes_is_exit_2(run, tmp_path, capsys):
    weights, _, _, images = run
    code = main(
        [
            "det",
            "predict",
            str(images / IMAGES[0]),
            "--weights",
            str(weights),
            "--num-classes",
            "3",
            "--out",
            str(tmp_path / "p"),
            "--device",
            "cpu",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hrnet: error:") and "num_classes=3" in err[0] and "80" in err[0]
    with pytest.raises(ValueError, match="not available for detection"):
        Detector(weights, device="cpu", runtime="onnx")
    with pytest.raises(ValueError, match="3 class names for a detector of 80"):
        Detector(weights, device="cpu", class_names=["a", "b", "c"])


def test_check_data_verb(run):
    _, sets, _, _ = run
    assert main(["det", "check-data", "--config", str(FIT), "--set", *sets]) == 0


def test_uncarded_80_class_detector_gets_cocos_ids():
    names, ids = default_classes(80)
    assert names == list(COCO_CLASSES) and ids == list(COCO_CATEGORY_IDS) and len(set(ids)) == 80
    assert default_classes(3) == (["1", "2", "3"], [1, 2, 3])


@pytest.fixture(scope="module")
def person_weights(run, tmp_path_factory):
    """The trained detector with its classifier pushed towards "person", saved with the same card."""
    weights = run[0]
    model = hrnet.load_model(weights)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.bias[1] += 12.0  # label 1 = the first category, person
    path = tmp_path_factory.mktemp("person") / "person.safetensors"
    hrnet.save_weights(model, path, card=model.card)
    return path


def test_pose_predict_takes_our_detector(run, person_weights, tmp_path):
    images = run[3]
    image = images / IMAGES[1]
    expect = Detector(person_weights, device="cpu").person_boxes(image, score_thr=0.5)
    assert len(expect) > 0
    # the pose side wraps the carded file (or the built module) without importing hrnet.detection
    np.testing.assert_allclose(PersonDetector(person_weights, score_thr=0.5, device="cpu")(image), expect, atol=1e-4)
    module = hrnet.load_model(person_weights)
    np.testing.assert_allclose(PersonDetector(module, score_thr=0.5, device="cpu")(image), expect, atol=1e-4)

    code = main(
        [
            "pose",
            "predict",
            str(image),
            "--config",
            str(POSE_TINY),
            "--detector",
            str(person_weights),
            "--det-thr",
            "0.5",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "pose"),
            "--no-save",
            "--runtime",
            "eager",
        ]
    )
    assert code == 0
    record = json.loads((tmp_path / "pose" / "run-001" / "results.json").read_text())["results"][0]
    assert record["boxes_source"] == "detector" and len(record["people"]) == len(expect)
    got = sorted(tuple(p["bbox"]) for p in record["people"])
    want = sorted((x1, y1, x2 - x1, y2 - y1) for x1, y1, x2, y2, _ in expect.tolist())
    np.testing.assert_allclose(got, want, atol=0.02)


def test_person_detector_needs_a_person_class(run, tmp_path):
    model = hrnet.load_model(run[0])
    card = dataclasses.replace(model.card, labels=[f"thing{i}" for i in range(80)])
    path = tmp_path / "things.safetensors"
    hrnet.save_weights(model, path, card=card)
    with pytest.raises(ValueError, match="no 'person' class"):
        PersonDetector(path, device="cpu")


def test_pose_estimator_takes_a_detector_or_its_weights(run, person_weights):
    """``PoseEstimator(detector=...)`` takes our ``Detector``, its carded file, or a plain callable alike."""
    from hrnet.pose import PoseEstimator

    image = run[3] / IMAGES[1]
    det = Detector(person_weights, device="cpu")
    expect = det.person_boxes(image, score_thr=0.5)
    for detector in (det, person_weights, str(person_weights), det.person_boxes):
        pose = PoseEstimator(
            "pose_hrnet_w18_small_v1", detector=detector, device="cpu", runtime="eager", flip_test=False
        )
        res = pose(image)
        assert res.boxes_source == "detector" and len(res) == len(expect)
        np.testing.assert_allclose(np.c_[res.boxes, res.box_scores], expect, atol=1e-4)
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        PoseEstimator("pose_hrnet_w18_small_v1", detector="nowhere.safetensors", device="cpu")
    with pytest.raises(TypeError, match="detector must be"):
        PoseEstimator("pose_hrnet_w18_small_v1", detector=42, device="cpu")
