"""The synthetic COCO keypoint dataset: valid for pycocotools, deterministic, and labels that match pixels."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hrnet.pose.synthetic import KEYPOINT_NAMES, make_synthetic_coco

SIZE = (160, 120)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_synthetic_coco(tmp_path_factory.mktemp("syn") / "d", num_train=24, num_val=8, image_size=SIZE, seed=3)


def _anns(path: Path) -> tuple[list[dict], list[dict]]:
    data = json.loads(path.read_text())
    return data["images"], data["annotations"]


def test_loads_in_pycocotools_and_files_exist(dataset: dict[str, Path]) -> None:
    from pycocotools.coco import COCO

    for split, n in (("train", 24), ("val", 8)):
        coco = COCO(str(dataset[f"{split}_json"]))
        assert len(coco.getImgIds()) == n
        cat = coco.loadCats(1)[0]
        assert cat["name"] == "person" and tuple(cat["keypoints"]) == KEYPOINT_NAMES
        assert len(cat["skeleton"]) == 19 and all(1 <= a <= 17 and 1 <= b <= 17 for a, b in cat["skeleton"])
        for img in coco.loadImgs(coco.getImgIds()):
            arr = cv2.imread(str(dataset["images"] / img["file_name"]))
            assert arr is not None and arr.shape[:2] == (img["height"], img["width"]) == (SIZE[1], SIZE[0])
        anns = coco.loadAnns(coco.getAnnIds())
        assert len(anns) >= n  # at least one person per image on average
        per_image = np.bincount([a["image_id"] for a in anns])
        assert per_image.max() <= 3
        for a in anns:
            assert a["iscrowd"] == 0 and a["category_id"] == 1 and len(a["keypoints"]) == 51
            assert a["segmentation"] and len(a["segmentation"][0]) >= 6
            # pycocotools turns the polygon into a mask that lies inside the box and is not empty
            m = coco.annToMask(a)
            assert m.sum() > 0
            x, y, w, h = a["bbox"]
            ys, xs = np.nonzero(m)
            assert xs.min() >= x - 1 and xs.max() <= x + w and ys.min() >= y - 1 and ys.max() <= y + h
            assert 0 < a["area"] <= w * h + 1


def test_keypoints_inside_boxes_and_flags_consistent(dataset: dict[str, Path]) -> None:
    _, anns = _anns(dataset["train_json"])
    counts = {0: 0, 1: 0, 2: 0}
    for a in anns:
        kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(17, 3)
        v = kp[:, 2].astype(int)
        assert set(v.tolist()) <= {0, 1, 2}
        assert a["num_keypoints"] == int((v > 0).sum())
        assert np.all(kp[v == 0, :2] == 0)  # COCO: unlabelled keypoints are (0, 0, 0)
        x, y, w, h = a["bbox"]
        lab = kp[v > 0]
        assert np.all(lab[:, 0] >= x - 0.5) and np.all(lab[:, 0] <= x + w + 0.5)
        assert np.all(lab[:, 1] >= y - 0.5) and np.all(lab[:, 1] <= y + h + 0.5)
        assert np.all((lab[:, :2] >= 0) & (lab[:, :2] <= np.array(SIZE) - 1))
        for k in range(3):
            counts[k] += int((v == k).sum())
    # a non-trivial task: some keypoints are occluded and some are cut off by the border
    assert counts[2] > 10 * counts[1] > 0 and counts[0] > 0


def test_visibility_matches_the_pixels(dataset: dict[str, Path]) -> None:
    """Visible limb joints are drawn as discs with a dark centre; occluded ones mostly are not."""
    images, anns = _anns(dataset["train_json"])
    files = {i["id"]: dataset["images"] / i["file_name"] for i in images}
    dark = {1: [], 2: []}
    for a in anns:
        rgb = cv2.imread(str(files[a["image_id"]]))
        kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(17, 3)
        for k in range(5, 17):  # shoulders .. ankles carry the joint discs
            x, y, v = kp[k]
            if v > 0:
                dark[int(v)].append(bool(rgb[int(round(y)), int(round(x))].max() < 90))
    assert len(dark[2]) > 50 and np.mean(dark[2]) > 0.9
    assert len(dark[1]) > 0 and np.mean(dark[1]) < 0.5


def test_ground_truth_as_results_scores_perfect_ap(dataset: dict[str, Path]) -> None:
    """pycocotools accepts the annotation (area, keypoints, flags): GT submitted as results gives AP 1."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(dataset["val_json"]))
        res = [
            {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
            for a in gt.loadAnns(gt.getAnnIds())
            if a["num_keypoints"] > 0
        ]
        ev = COCOeval(gt, gt.loadRes(res), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)
    # and a result shifted by a few pixels scores clearly lower: the areas make OKS sensitive
    shift = lambda kp: [v + 4.0 if i % 3 < 2 else v for i, v in enumerate(kp)]  # noqa: E731
    shifted = [dict(r, keypoints=shift(r["keypoints"])) for r in res]
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(shifted), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] < 0.9


def test_detections_file_is_official_format(dataset: dict[str, Path]) -> None:
    from pycocotools.coco import COCO

    dets = json.loads(dataset["detections"].read_text())
    images, anns = _anns(dataset["val_json"])
    ids = {i["id"] for i in images}
    assert dets and all(set(d) == {"image_id", "category_id", "bbox", "score"} for d in dets)
    assert {d["image_id"] for d in dets} <= ids
    assert all(d["category_id"] == 1 and d["bbox"][2] > 0 and d["bbox"][3] > 0 for d in dets)
    gt = COCO(str(dataset["val_json"]))
    assert len(gt.loadRes(str(dataset["detections"])).getAnnIds()) == len(dets)
    # every GT person has a high-score detection overlapping it well; false positives have low scores
    from pycocotools import mask as mask_utils

    for a in anns:
        cands = [d for d in dets if d["image_id"] == a["image_id"] and d["score"] >= 0.7]
        ious = mask_utils.iou([d["bbox"] for d in cands], [a["bbox"]], [0]) if cands else np.zeros((0, 1))
        assert ious.size and ious.max() > 0.5
    assert len(dets) > len(anns)


def test_deterministic_and_reused(tmp_path: Path) -> None:
    a = make_synthetic_coco(tmp_path / "a", num_train=3, num_val=2, image_size=(96, 72), seed=7)
    b = make_synthetic_coco(tmp_path / "b", num_train=3, num_val=2, image_size=(96, 72), seed=7)
    c = make_synthetic_coco(tmp_path / "c", num_train=3, num_val=2, image_size=(96, 72), seed=8)
    for key in ("train_json", "val_json", "detections"):
        assert a[key].read_bytes() == b[key].read_bytes()
    names = sorted(p.name for p in a["images"].iterdir())
    assert names == sorted(p.name for p in b["images"].iterdir()) and len(names) == 5
    assert all((a["images"] / n).read_bytes() == (b["images"] / n).read_bytes() for n in names)
    assert a["train_json"].read_bytes() != c["train_json"].read_bytes()
    # a second call with the same arguments reuses the folder; other arguments re-render it
    stamp = a["train_json"].stat().st_mtime_ns
    make_synthetic_coco(tmp_path / "a", num_train=3, num_val=2, image_size=(96, 72), seed=7)
    assert a["train_json"].stat().st_mtime_ns == stamp
    make_synthetic_coco(tmp_path / "a", num_train=4, num_val=2, image_size=(96, 72), seed=7)
    assert len(json.loads(a["train_json"].read_text())["images"]) == 4


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="image_size"):
        make_synthetic_coco("/nonexistent/never", num_train=1, num_val=1, image_size=(8, 8))
    with pytest.raises(ValueError, match="num_train"):
        make_synthetic_coco("/nonexistent/never", num_train=-1)
