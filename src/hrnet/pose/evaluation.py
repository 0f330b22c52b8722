"""Pose evaluation: the COCO protocol (rescoring, OKS-NMS, pycocotools) and MPII PCKh.

COCO protocol of the official code, in NumPy: each person's score is its box score times the mean of its
keypoint scores above 0.2; within an image, people whose poses overlap another, higher-scored one with
OKS > 0.9 are suppressed; the rest go to pycocotools' ``COCOeval`` with the keypoint set's own sigmas
(pycocotools defaults to the 17 COCO ones, which would be wrong, or crash, for any other set).
The ground truth goes through the dataset's reader first, so files that lack ``area`` or ``iscrowd``
score as they train. A file with a ``crowdIndex`` per image is scored with the CrowdPose protocol, and
COCO-WholeBody per part (:func:`evaluate_wholebody`). Facial landmarks are scored by NME
(:mod:`hrnet.pose.landmarks`); the ``hand`` set adds mmpose's PCK@0.2 / AUC / EPE (:mod:`hrnet.pose.hand_metrics`).
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pycocotools.cocoeval import COCOeval

from hrnet.coco import coco_index
from hrnet.pose.datasets import complete_coco_keypoints, read_coco_keypoints
from hrnet.pose.keypoints import COCO_KEYPOINTS
from hrnet.pose.wholebody import NUM_WHOLEBODY, WHOLEBODY_PARTS
from hrnet.track.geometry import oks_matrix

COCO_METRIC_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")
CROWDPOSE_METRIC_NAMES = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard")
# CrowdPose protocol constants (official crowdposetools): crowdIndex thresholds and the OKS scale factor
CROWD_EASY, CROWD_HARD = 0.2, 0.8
CROWD_BOX_AREA = 0.53


def oks(
    gt: np.ndarray,
    dets: np.ndarray,
    gt_area: float,
    det_areas: np.ndarray,
    sigmas: np.ndarray,
    vis_thr: float | None = None,
) -> np.ndarray:
    """Object keypoint similarity of one pose ``gt`` (K, 3) with each of ``dets`` (M, K, 3).

    OKS = mean_k exp(-d_k^2 / (2 s^2 (2 sigma_k)^2)) with s^2 the mean of the two areas; with ``vis_thr``
    only keypoints scored above it in both poses count (none -> 0).
    """
    g = np.asarray(gt, dtype=np.float64)
    d = np.asarray(dets, dtype=np.float64).reshape(-1, *g.shape)
    thr = -np.inf if vis_thr is None else vis_thr  # None: every keypoint counts
    return oks_matrix(
        g[None, :, :2], g[None, :, 2], np.array([gt_area]), d[..., :2], d[..., 2], det_areas, sigmas, thr
    )[0]


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thr: float = 0.9,
    sigmas: np.ndarray | None = None,
    vis_thr: float | None = None,
) -> list[int]:
    """Greedy NMS by OKS: indices of the kept poses (K, 3 each) in descending score order."""

    kpts = np.asarray(keypoints, dtype=np.float64)
    if len(kpts) == 0:
        return []
    sig = COCO_KEYPOINTS.sigmas if sigmas is None else np.asarray(sigmas)
    if len(sig) != kpts.shape[1]:
        raise ValueError(f"oks_nms: {len(sig)} sigmas for poses of {kpts.shape[1]} keypoints")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    areas = np.asarray(areas, dtype=np.float64)
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        rest = order[1:]
        sim = oks(kpts[i], kpts[rest], areas[i], areas[rest], sig, vis_thr)
        order = rest[sim <= thr]
    return keep


def rescore(keypoint_scores: np.ndarray, box_scores: np.ndarray, vis_thr: float = 0.2) -> np.ndarray:
    """Person score = box score x mean of the keypoint scores above ``vis_thr`` (x 0 when none is)."""
    ks = np.asarray(keypoint_scores, dtype=np.float64)
    ks = ks.reshape(1, -1) if ks.ndim == 1 else ks
    mask = ks > vis_thr
    count = mask.sum(axis=1)
    mean = np.where(count > 0, (ks * mask).sum(axis=1) / np.maximum(count, 1), 0.0)
    return mean * np.asarray(box_scores, dtype=np.float64).reshape(-1)


def coco_results(
    image_ids: Sequence[int],
    keypoints: np.ndarray,
    keypoint_scores: np.ndarray,
    box_scores: Sequence[float],
    areas: Sequence[float],
    sigmas: np.ndarray,
    vis_thr: float = 0.2,
    oks_thr: float = 0.9,
    use_nms: bool = True,
    category_id: int = 1,
) -> list[dict]:
    """Per-person predictions -> COCO keypoint results (rescored, OKS-NMS'ed per image)."""
    kpts = np.asarray(keypoints, dtype=np.float64)
    kscores = np.asarray(keypoint_scores, dtype=np.float64)
    if len(kpts) == 0:
        return []
    scores = rescore(kscores, np.asarray(box_scores), vis_thr)
    areas = np.asarray(areas, dtype=np.float64)
    full = np.concatenate([kpts, kscores[..., None]], axis=2)  # (N, K, 3)
    by_image: dict[int, list[int]] = defaultdict(list)
    for i, image_id in enumerate(image_ids):
        by_image[int(image_id)].append(i)
    results = []
    for image_id, idx in by_image.items():
        idx_arr = np.asarray(idx)
        # as the official code: the threshold selects keypoints for rescoring only; NMS compares all of them
        keep = (
            oks_nms(full[idx_arr], scores[idx_arr], areas[idx_arr], oks_thr, sigmas)
            if use_nms
            else list(range(len(idx)))
        )
        for j in keep:
            i = int(idx_arr[j])
            results.append(
                {
                    "image_id": image_id,
                    "category_id": category_id,
                    "keypoints": [round(float(v), 3) for v in full[i].reshape(-1)],
                    "score": float(scores[i]),
                }
            )
    return results


def coco_ground_truth(gt: str | Path | dict | object) -> object:
    """A ``pycocotools.coco.COCO`` for ``gt``: a file or dict is read with :func:`read_coco_keypoints` first, so
    files without ``area`` / ``iscrowd`` (or with stale ``num_keypoints``) score instead of crashing."""
    if not isinstance(gt, str | Path | dict):
        return gt
    if isinstance(gt, dict):
        return coco_index(complete_coco_keypoints(copy.deepcopy(gt), "ground truth").data)
    return coco_index(read_coco_keypoints(gt).data)


def crowd_index_split(coco_gt: object) -> dict[str, list[int]] | None:
    """Image ids per CrowdPose difficulty (crowdIndex < 0.2 easy, < 0.8 medium, else hard, as the official
    crowdposetools); None unless every image has a ``crowdIndex``."""
    images = coco_gt.dataset.get("images", [])  # type: ignore[attr-defined]
    if not images or not all("crowdIndex" in im for im in images):
        return None
    split: dict[str, list[int]] = {"easy": [], "medium": [], "hard": []}
    for im in images:
        ci = float(im["crowdIndex"])
        split["easy" if ci < CROWD_EASY else "medium" if ci < CROWD_HARD else "hard"].append(im["id"])
    return split


def _mean_valid(values: np.ndarray) -> float:
    v = values[values > -1]
    return float(v.mean()) if v.size else -1.0


def _run_cocoeval(coco_gt: object, results: list[dict], sig: np.ndarray, crowd: bool) -> object:

    coco_dt = coco_gt.loadRes(list(results))  # type: ignore[attr-defined]
    ev = COCOeval(coco_gt, coco_dt, "keypoints")
    ev.params.useSegm = None
    ev.params.kpt_oks_sigmas = sig
    kp_cats = [c["id"] for c in coco_gt.dataset.get("categories", []) if c.get("keypoints")]  # type: ignore
    if len(kp_cats) > 1:  # several categories share one keypoint set: top-down predictions carry no category
        ev.params.useCats = 0
    if crowd:
        ev.params.maxDets = [20]
        ev.params.areaRng = [[0, 1e10]]
        ev.params.areaRngLbl = ["all"]
    return ev


def _crowdpose_metrics(
    coco_gt: object, results: list[dict], sig: np.ndarray, split: dict[str, list[int]]
) -> dict[str, float]:
    """The CrowdPose protocol: OKS scale 0.53 x box w x h, at most 20 people per image, one area range,
    AP / AR over all images and AP per crowdIndex difficulty."""
    data = dict(coco_gt.dataset)  # type: ignore[attr-defined]
    data["annotations"] = [{**a, "area": CROWD_BOX_AREA * a["bbox"][2] * a["bbox"][3]} for a in data["annotations"]]
    gt = coco_index(data)
    with contextlib.redirect_stdout(io.StringIO()):
        ev = _run_cocoeval(gt, results, sig, crowd=True)
        ev.evaluate()
        ev.accumulate()
        precision, recall = ev.eval["precision"], ev.eval["recall"]  # (T, R, K, A, M), (T, K, A, M)
        thr = ev.params.iouThrs
        at = {t: int(np.argmin(np.abs(thr - t))) for t in (0.5, 0.75)}
        out = {
            "AP": _mean_valid(precision),
            "AP50": _mean_valid(precision[at[0.5]]),
            "AP75": _mean_valid(precision[at[0.75]]),
            "AR": _mean_valid(recall),
            "AR50": _mean_valid(recall[at[0.5]]),
            "AR75": _mean_valid(recall[at[0.75]]),
        }
        for name, ids in split.items():
            if not ids:
                out[f"AP_{name}"] = -1.0
                continue
            ev.params.imgIds = ids
            ev.evaluate()
            ev.accumulate()
            out[f"AP_{name}"] = _mean_valid(ev.eval["precision"])
    return out


def evaluate_coco(
    gt: str | Path | dict | object, results: list[dict], sigmas: np.ndarray | None = None, verbose: bool = False
) -> dict[str, float]:
    """AP / AP50 / AP75 / APM / APL / AR (and AR50 ... ARL) of ``results`` with pycocotools.

    ``gt`` is an annotation file, its parsed dict (both completed by :func:`read_coco_keypoints`) or a
    ``pycocotools.coco.COCO``; ``sigmas`` default to COCO's 17 and must match the keypoint count. When the
    file has one keypoint category, results are scored as that category whatever ``category_id`` they
    carry. When every image has a ``crowdIndex`` (CrowdPose), the CrowdPose protocol is used instead and
    the metrics are AP, AP50, AP75, AR, AR50, AR75, AP_easy, AP_medium, AP_hard. No results -> all zeros.
    """

    sig = COCO_KEYPOINTS.sigmas if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    coco_gt = coco_ground_truth(gt)
    split = crowd_index_split(coco_gt)
    names = CROWDPOSE_METRIC_NAMES if split is not None else COCO_METRIC_NAMES
    if not results:
        return dict.fromkeys(names, 0.0)
    k = len(results[0]["keypoints"]) // 3
    if k != len(sig):
        raise ValueError(f"results have {k} keypoints but {len(sig)} OKS sigmas were given")
    kp_cats = [c["id"] for c in coco_gt.dataset.get("categories", []) if c.get("keypoints")]  # type: ignore
    if len(kp_cats) == 1:
        results = [{**r, "category_id": kp_cats[0]} for r in results]
    if split is not None:
        return _crowdpose_metrics(coco_gt, results, sig, split)
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        ev = _run_cocoeval(coco_gt, results, sig, crowd=False)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    if verbose:
        print(sink.getvalue())
    return {name: float(v) for name, v in zip(COCO_METRIC_NAMES, ev.stats)}


def pckh(
    pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, head_sizes: np.ndarray, thr: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Per-keypoint PCKh (K,) in percent and the number of counted people per keypoint (K,).

    A keypoint is correct when its distance to the truth is <= ``thr`` x the person's head size;
    only visible keypoints of people with a positive head size count.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    heads = np.asarray(head_sizes, dtype=np.float64).reshape(-1, 1)
    counted = (np.asarray(visible) > 0) & (heads > 0)
    dist = np.linalg.norm(pred - gt, axis=2) / np.where(heads > 0, heads, 1.0)
    hits = ((dist <= thr) & counted).sum(axis=0)
    count = counted.sum(axis=0)
    return 100.0 * hits / np.maximum(count, 1), count


MPII_GROUPS = {
    "Head": ("head_top",),
    "Shoulder": ("left_shoulder", "right_shoulder"),
    "Elbow": ("left_elbow", "right_elbow"),
    "Wrist": ("left_wrist", "right_wrist"),
    "Hip": ("left_hip", "right_hip"),
    "Knee": ("left_knee", "right_knee"),
    "Ankle": ("left_ankle", "right_ankle"),
}


def pckh_table(
    pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, head_sizes: np.ndarray, names: Sequence[str]
) -> dict[str, float]:
    """The MPII table: PCKh@0.5 per body part, ``PCKh`` (mean) and ``PCKh@0.1``.

    As in the official evaluation, the means weight keypoints by their counts and leave out the pelvis
    and thorax.
    """
    names = list(names)
    out: dict[str, float] = {}
    for thr, key in ((0.5, "PCKh"), (0.1, "PCKh@0.1")):
        per, count = pckh(pred, gt, visible, head_sizes, thr)
        used = np.array([n not in ("pelvis", "thorax") for n in names]) & (count > 0)
        out[key] = float((per * count)[used].sum() / max(count[used].sum(), 1))
        if thr == 0.5:
            for group, members in MPII_GROUPS.items():
                idx = [names.index(m) for m in members if m in names]
                if idx and count[idx].sum() > 0:
                    out[group] = float((per[idx] * count[idx]).sum() / count[idx].sum())
    return out


def evaluate_wholebody(gt: str | Path | dict, results: list[dict], sigmas: np.ndarray) -> dict[str, float]:
    """COCO-WholeBody: the COCO metrics of all 133 keypoints (``AP``, ``AR``, ...: "whole") and ``AP_<part>`` /
    ``AR_<part>`` of body, foot, face, left_hand and right_hand, each through pycocotools with only that
    part's keypoints and sigmas (as the official evaluation: a person without labelled keypoints in a part
    is ignored for that part; the OKS scale is the person's area for every part).

    ``gt`` is a COCO-WholeBody file or its parsed dict (parts merged or not); ``results`` hold 133
    keypoints per person (after rescoring and OKS-NMS on the whole body)."""
    sig = np.asarray(sigmas, dtype=np.float64)
    if sig.shape != (NUM_WHOLEBODY,):
        raise ValueError(f"COCO-WholeBody evaluation needs {NUM_WHOLEBODY} sigmas, got {sig.size}")
    if isinstance(gt, dict):
        data = complete_coco_keypoints(copy.deepcopy(gt), "ground truth", NUM_WHOLEBODY).data
    else:
        data = read_coco_keypoints(gt, NUM_WHOLEBODY, "COCO-WholeBody annotation file").data
    out = evaluate_coco(data, results, sig)
    for part, (lo, hi) in WHOLEBODY_PARTS.items():
        part_gt = {
            **data,
            "annotations": [{**a, "keypoints": a["keypoints"][3 * lo : 3 * hi]} for a in data["annotations"]],
        }
        part_results = [{**r, "keypoints": list(r["keypoints"][3 * lo : 3 * hi])} for r in results]
        scores = evaluate_coco(part_gt, part_results, sig[lo:hi])
        out[f"AP_{part}"], out[f"AR_{part}"] = scores["AP"], scores["AR"]
    return out
