"""Custom COCO-style keypoint files as other datasets ship them, built from the real COCO sample:
14 keypoints in another order, no ``area`` / ``iscrowd``, a 1-based skeleton in the JSON, ``crowdIndex``.

Truth: pycocotools run directly on files whose missing fields the test fills by hand, hand-computed
flip pairs and sigmas, and perfect / absent predictions whose AP is 1 / 0 by definition.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hrnet.engine.config import load_config
from hrnet.pose.config import PoseConfig, resolve_keypoint_set
from hrnet.pose.datasets import CocoKeypoints, read_coco_keypoints
from hrnet.pose.evaluation import evaluate_coco
from hrnet.pose.keypoints import (
    COCO_KEYPOINTS,
    MissingSigmasError,
    builtin_keypoint_sets,
    canonical_name,
    keypoint_set_from_coco,
    load_keypoint_set,
)

# a 14-keypoint subset of COCO (no nose, no eyes), right side first: the order of the custom file
NAMES14 = [
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_ear",
    "right_ear",
]
SKELETON_1BASED = [[1, 2], [2, 3], [4, 5], [5, 6], [7, 8], [8, 9], [10, 11], [11, 12], [1, 7], [4, 10], [13, 14]]
# COCO's OKS sigmas by name, typed from the COCO keypoint evaluation
COCO_SIGMA = {
    "left_ear": 0.035,
    "right_ear": 0.035,
    "left_shoulder": 0.079,
    "right_shoulder": 0.079,
    "left_elbow": 0.072,
    "right_elbow": 0.072,
    "left_wrist": 0.062,
    "right_wrist": 0.062,
    "left_hip": 0.107,
    "right_hip": 0.107,
    "left_knee": 0.087,
    "right_knee": 0.087,
    "left_ankle": 0.089,
    "right_ankle": 0.089,
}
TINY = Path(__file__).resolve().parents[2] / "configs" / "pose" / "sample" / "tiny.yaml"


def _custom(
    coco_dir: Path,
    *,
    strip: tuple[str, ...] = ("area", "iscrowd", "num_keypoints"),
    segmentation: bool = True,
    crowd_index: dict[int, float] | None = None,
) -> dict:
    """The COCO sample rewritten as a 14-keypoint dataset of another source (see the module docstring)."""
    data = json.loads((coco_dir / "person_keypoints_sample.json").read_text())
    order = [COCO_KEYPOINTS.names.index(n) for n in NAMES14]
    for ann in data["annotations"]:
        kp = np.asarray(ann["keypoints"], dtype=float).reshape(17, 3)[order]
        ann["keypoints"] = [int(v) for v in kp.reshape(-1)]
        for key in strip:
            ann.pop(key, None)
        if not segmentation:
            ann.pop("segmentation", None)
    data["categories"] = [
        {"id": 1, "name": "person", "supercategory": "person", "keypoints": NAMES14, "skeleton": SKELETON_1BASED}
    ]
    for img in data["images"]:
        if crowd_index is not None:
            img["crowdIndex"] = crowd_index[img["id"]]
    return data


def _write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def _results_from_gt(data: dict, noise: float = 0.0, image_ids: set[int] | None = None) -> list[dict]:
    """One prediction per annotated person: its ground truth, moved by a fixed pseudo-random offset."""
    rng = np.random.default_rng(0)
    out = []
    for ann in data["annotations"]:
        if image_ids is not None and ann["image_id"] not in image_ids:
            continue
        kp = np.asarray(ann["keypoints"], dtype=float).reshape(-1, 3)
        if (kp[:, 2] > 0).sum() == 0:
            continue
        kp[:, :2] += noise * rng.standard_normal((len(kp), 2))
        kp[:, 2] = 1.0
        out.append(
            {
                "image_id": ann["image_id"],
                "category_id": 1,
                "keypoints": kp.reshape(-1).tolist(),
                "score": float(rng.uniform(0.5, 1.0)),
            }
        )
    return out


def _pycocotools_ap(
    gt: dict,
    results: list[dict],
    sigmas: np.ndarray,
    *,
    max_dets: int | None = None,
    single_area: bool = False,
    image_ids: list[int] | None = None,
) -> float:
    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(results)), "keypoints")
        ev.params.kpt_oks_sigmas = sigmas
        if max_dets is not None:
            ev.params.maxDets = [max_dets]
        if single_area:
            ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
        if image_ids is not None:
            ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
    p = ev.eval["precision"]
    return float(p[p > -1].mean()) if single_area else float(np.mean(p[:, :, 0, 0, -1][p[:, :, 0, 0, -1] > -1]))


# ---------------------------------------------------------------------------------------------------
# keypoint sets from the data


def test_from_annotations_builds_flip_pairs_skeleton_and_sigmas(coco_dir):
    ks = keypoint_set_from_coco(_custom(coco_dir), "custom.json")
    assert ks.names == NAMES14
    # by hand: right_x at i pairs with left_x at i + 6; the ears are 12 (left) and 13 (right)
    assert sorted(tuple(sorted(p)) for p in ks.flip_pairs) == [
        (0, 6),
        (1, 7),
        (2, 8),
        (3, 9),
        (4, 10),
        (5, 11),
        (12, 13),
    ]
    assert ks.skeleton == [(a - 1, b - 1) for a, b in SKELETON_1BASED]
    np.testing.assert_allclose(ks.sigmas, [COCO_SIGMA[n] for n in NAMES14])
    assert [NAMES14[i] for i in ks.lower_body] == [
        "right_hip",
        "right_knee",
        "right_ankle",
        "left_hip",
        "left_knee",
        "left_ankle",
    ]


def test_names_in_other_spellings_and_unknown_names():
    halpe_style = {
        "categories": [
            {
                "id": 1,
                "name": "p",
                "keypoints": ["Neck", "RShoulder", "LShoulder", "LBigToe", "RBigToe"],
                "skeleton": [[1, 2], [1, 3]],
            }
        ]
    }
    ks = keypoint_set_from_coco(halpe_style)
    assert sorted(tuple(sorted(p)) for p in ks.flip_pairs) == [(1, 2), (3, 4)]
    # only Halpe has neck and big toes: its sigmas (neck 0.080, shoulders 0.079, big toes 0.089), reordered
    np.testing.assert_allclose(ks.sigmas, [0.080, 0.079, 0.079, 0.089, 0.089])
    assert canonical_name("l-Knee") == "left_knee" and canonical_name("RightElbow") == "right_elbow"

    birds = {
        "categories": [
            {"id": 1, "name": "bird", "keypoints": ["beak", "left_wing", "right_wing"], "skeleton": [[1, 2], [1, 3]]}
        ]
    }
    ks = keypoint_set_from_coco(birds, "birds.json")
    assert ks.flip_pairs == [(1, 2)] and ks.sigmas is None and ks.skeleton == [(0, 1), (0, 2)]
    with pytest.raises(MissingSigmasError, match=r"no OKS sigmas.*match no shipped set.*'sigmas'"):
        ks.require_sigmas()


def test_skeleton_numbering_errors():
    bad = {"categories": [{"id": 1, "keypoints": ["a", "b"], "skeleton": [[1, 3]]}]}
    with pytest.raises(ValueError, match=r"skeleton numbers run from 1 to 3, but there are 2 keypoints"):
        keypoint_set_from_coco(bad, "x.json")
    zero_based = {"categories": [{"id": 1, "keypoints": ["a", "b"], "skeleton": [[0, 1]]}]}
    assert keypoint_set_from_coco(zero_based).skeleton == [(0, 1)]
    with pytest.raises(ValueError, match="no category declares 'keypoints'"):
        keypoint_set_from_coco({"categories": [{"id": 1, "name": "person"}]}, "y.json")


def test_shipped_sets():
    assert {"coco", "mpii", "crowdpose", "aic", "ochuman", "halpe"} <= set(builtin_keypoint_sets())
    sizes = {"coco": 17, "mpii": 16, "crowdpose": 14, "aic": 14, "ochuman": 17, "halpe": 26}
    for name, k in sizes.items():
        ks = load_keypoint_set(name)
        assert ks.num_keypoints == k and ks.sigmas is not None and len(ks.sigmas) == k
        for a, b in ks.flip_pairs:  # every pair is a left/right mirror by name
            assert canonical_name(ks.names[a]).replace("left", "right") == canonical_name(ks.names[b]).replace(
                "left", "right"
            )
        assert sorted(ks.upper_body + ks.lower_body) == list(range(k))
    # official evaluation tools: CrowdPose head / neck 0.079; AIC right shoulder 0.01388152, neck 0.01236173
    cp, aic = load_keypoint_set("crowdpose"), load_keypoint_set("aic")
    assert cp.sigmas[cp.names.index("head")] == 0.079 and cp.sigmas[cp.names.index("left_hip")] == 0.107
    assert aic.sigmas[0] == 0.01388152 and aic.sigmas[aic.names.index("neck")] == 0.01236173
    np.testing.assert_array_equal(load_keypoint_set("ochuman").sigmas, COCO_KEYPOINTS.sigmas)


def test_keypoint_set_path_is_relative_to_the_config(coco_dir, tmp_path, monkeypatch):
    exp = tmp_path / "experiments"
    (exp / "sets").mkdir(parents=True)
    (exp / "sets" / "mine.yaml").write_text(
        "names: [a, left_b, right_b]\nflip_pairs: [[left_b, right_b]]\nsigmas: [0.05, 0.06, 0.06]\n"
    )
    (exp / "run.yaml").write_text(f"data: {{root: {coco_dir}, keypoint_set: sets/mine.yaml}}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(PoseConfig, exp / "run.yaml")
    assert Path(cfg.data.keypoint_set) == (exp / "sets" / "mine.yaml").resolve()
    assert resolve_keypoint_set(cfg.data).names == ["a", "left_b", "right_b"]
    # a --set value not found next to the config stays relative to the working directory
    (elsewhere / "cwd.yaml").write_text("names: [x]\n")
    cfg = load_config(PoseConfig, exp / "run.yaml", ["data.keypoint_set=cwd.yaml"])
    ks = resolve_keypoint_set(cfg.data)
    assert ks.names == ["x"] and ks.sigmas is None


# ---------------------------------------------------------------------------------------------------
# files as they come


def test_missing_fields_are_filled_and_wrong_types_named(coco_dir, tmp_path):
    path = _write(tmp_path / "custom.json", _custom(coco_dir))
    f = read_coco_keypoints(path, 14)
    n = len(f.data["annotations"])
    assert f.filled == {"iscrowd": n, "area (from the segmentation)": n, "num_keypoints": n}
    original = {a["id"]: a for a in json.loads((coco_dir / "person_keypoints_sample.json").read_text())["annotations"]}
    for ann in f.data["annotations"]:  # COCO's own area is the polygon area; ours must be the same
        assert ann["area"] == pytest.approx(original[ann["id"]]["area"], rel=1e-9)
        assert ann["num_keypoints"] == sum(v > 0 for v in ann["keypoints"][2::3]) and ann["iscrowd"] == 0
    no_seg = read_coco_keypoints(_write(tmp_path / "noseg.json", _custom(coco_dir, segmentation=False)), 14)
    box = {a["id"]: a["bbox"][2] * a["bbox"][3] for a in no_seg.data["annotations"]}
    assert all(a["area"] == pytest.approx(box[a["id"]]) for a in no_seg.data["annotations"])

    data = _custom(coco_dir)
    data["annotations"][3]["keypoints"] = [str(v) for v in data["annotations"][3]["keypoints"]]
    bad = _write(tmp_path / "strings.json", data)
    aid = data["annotations"][3]["id"]
    with pytest.raises(ValueError, match=rf"strings.json: annotation id {aid}: keypoints hold '.*' \(a str\)"):
        CocoKeypoints(bad, coco_dir / "images", keypoint_set=resolve_keypoint_set_from(bad))
    data = _custom(coco_dir)
    data["annotations"][1]["id"] = data["annotations"][0]["id"]
    with pytest.raises(ValueError, match=rf"annotation id {data['annotations'][0]['id']} is used twice"):
        read_coco_keypoints(_write(tmp_path / "dup.json", data), 14)


def resolve_keypoint_set_from(path: Path):
    return load_keypoint_set("from_annotations", annotations=path)


def test_keypoints_far_outside_are_reported(coco_dir, tmp_path, caplog):
    data = _custom(coco_dir)
    data["annotations"][0]["keypoints"][0] = -2000
    path = _write(tmp_path / "far.json", data)
    with caplog.at_level(logging.WARNING, logger="hrnet.pose"):
        ds = CocoKeypoints(path, coco_dir / "images", keypoint_set=resolve_keypoint_set_from(path))
    assert ds.outside_keypoints == 1
    assert f"annotation id {data['annotations'][0]['id']}" in caplog.text and "outside their image" in caplog.text


def test_ap_equals_pycocotools_with_area_filled_by_hand(coco_dir, tmp_path):
    sig = np.array([COCO_SIGMA[n] for n in NAMES14])
    stripped = _custom(coco_dir)
    results = _results_from_gt(stripped, noise=4.0)
    ours = evaluate_coco(_write(tmp_path / "custom.json", stripped), results, sig)
    # by hand: the same file with COCO's own area, iscrowd 0 and num_keypoints put back
    by_hand = _custom(coco_dir, strip=())
    expected = _pycocotools_ap(by_hand, results, sig)
    assert 0.2 < ours["AP"] < 0.99 and ours["AP"] == pytest.approx(expected, abs=1e-12)
    # no segmentation: area = box w x h, filled by hand
    no_seg = _custom(coco_dir, segmentation=False)
    by_hand = copy.deepcopy(no_seg)
    for ann in by_hand["annotations"]:
        ann.update(
            area=ann["bbox"][2] * ann["bbox"][3], iscrowd=0, num_keypoints=sum(v > 0 for v in ann["keypoints"][2::3])
        )
    ours = evaluate_coco(_write(tmp_path / "noseg.json", no_seg), results, sig)
    assert ours["AP"] == pytest.approx(_pycocotools_ap(by_hand, results, sig), abs=1e-12)


def test_crowd_index_gives_ap_easy_medium_hard(coco_dir, tmp_path):
    # 785 easy, 40083 + 197388 medium, 196141 hard (CrowdPose thresholds 0.2 / 0.8)
    ci = {785: 0.1, 40083: 0.5, 197388: 0.7, 196141: 0.9}
    data = _custom(coco_dir, crowd_index=ci)
    sig = np.array([COCO_SIGMA[n] for n in NAMES14])
    perfect_easy = _results_from_gt(data, 0.0, {785})
    noisy_medium = _results_from_gt(data, 5.0, {40083, 197388})
    metrics = evaluate_coco(_write(tmp_path / "crowd.json", data), perfect_easy + noisy_medium, sig)
    assert set(metrics) == {"AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard"}
    assert metrics["AP_easy"] == pytest.approx(1.0)  # every person found exactly
    assert metrics["AP_hard"] == pytest.approx(0.0)  # people, but no prediction
    # the CrowdPose protocol by hand: OKS scale 0.53 x box area, 20 people per image, one area range
    by_hand = _custom(coco_dir, strip=())
    for ann in by_hand["annotations"]:
        ann["area"] = 0.53 * ann["bbox"][2] * ann["bbox"][3]
    medium = _pycocotools_ap(
        by_hand, perfect_easy + noisy_medium, sig, max_dets=20, single_area=True, image_ids=[40083, 197388]
    )
    assert 0.05 < metrics["AP_medium"] < 0.99 and metrics["AP_medium"] == pytest.approx(medium, abs=1e-12)
    everything = _pycocotools_ap(by_hand, perfect_easy + noisy_medium, sig, max_dets=20, single_area=True)
    assert metrics["AP"] == pytest.approx(everything, abs=1e-12)


# ---------------------------------------------------------------------------------------------------
# the whole path: train, eval, predict with the file as it came


def test_train_eval_predict_without_editing_the_json(coco_dir, tmp_path):
    from hrnet.pose.api import PoseEstimator
    from hrnet.pose.train import evaluate, train

    _write(tmp_path / "custom.json", _custom(coco_dir))
    cfg = load_config(
        PoseConfig,
        TINY,
        [
            f"data.root={tmp_path}",
            "data.train_ann=custom.json",
            "data.val_ann=custom.json",
            f"data.train_images={coco_dir / 'images'}",
            f"data.val_images={coco_dir / 'images'}",
            "data.keypoint_set=from_annotations",
            "data.input_size=[48,64]",
            "train.epochs=1",
            "train.eval_every=1",
            "train.log_every=1",
        ],
    )
    out = tmp_path / "run"
    metrics = train(cfg, out, device="cpu")
    assert {"AP", "AR"} <= set(metrics) and 0.0 <= metrics["AP"] <= 1.0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["type"] for r in rows if r["type"].startswith("eval")] == ["eval"]  # no evaluation error
    again = evaluate(cfg, out / "model_best.safetensors", device="cpu")
    assert again["AP"] == pytest.approx(metrics["AP"])
    # predict (kept small, the predict flags are being reworked): the weights carry the 14-keypoint set
    est = PoseEstimator(out / "model_best.safetensors", device="cpu")
    res = est(coco_dir / "images" / "000000000785.jpg", boxes=[[280.0, 44.0, 500.0, 391.0]])
    assert res.keypoints.shape == (1, 14, 2) and list(res.keypoint_set.names) == NAMES14


def test_unknown_names_fail_before_training_not_after(coco_dir, tmp_path):
    from hrnet.pose.train import train

    data = _custom(coco_dir)
    data["categories"][0]["keypoints"] = [f"point_{i}" for i in range(14)]
    _write(tmp_path / "custom.json", data)
    cfg = load_config(
        PoseConfig,
        TINY,
        [
            f"data.root={tmp_path}",
            "data.train_ann=custom.json",
            f"data.train_images={coco_dir / 'images'}",
            "data.keypoint_set=from_annotations",
            "train.epochs=1",
        ],
    )
    with pytest.raises(MissingSigmasError, match=r"evaluation during training.*train.eval_every=0"):
        train(cfg, tmp_path / "run", device="cpu")
    assert not (tmp_path / "run" / "last.pt").exists()
