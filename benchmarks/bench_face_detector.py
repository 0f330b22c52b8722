"""Face detector (``--detector opencv_face``) on the repository's facial landmark sample.

For each data set (WFLW, 300W, COFW, AFLW; shared/data/face_landmark_sample): recall at IoU >= 0.5 against
the ground-truth face boxes, unmatched detections per image and ms per image (best of ``--repeat`` runs,
single thread count as OpenCV picks it). The ground-truth face box is the box the landmark model's
training crop is made from: the ``scale * 200`` px square around ``center`` (WFLW, 300W, AFLW), COFW's
``bbox`` made square about its centre (the crop grows it to the 1:1 input the same way). It also prints the
median relation of the raw Haar box to that face box (the correction ``BOX_SIDE`` / ``BOX_SHIFT_Y``).

    python benchmarks/bench_face_detector.py [--data shared/data/face_landmark_sample] [--score-thr 0.5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hrnet.io import read_image
from hrnet.pose.face_detector import FaceDetector

DATASETS = ("wflw", "300w", "cofw", "aflw")


def face_boxes(ann_file: Path) -> dict[str, list[list[float]]]:
    """Ground-truth face boxes (x1, y1, x2, y2) by image file name, in the landmark crops' convention."""
    data = json.loads(ann_file.read_text(encoding="utf-8"))
    names = {im["id"]: im["file_name"] for im in data["images"]}
    out: dict[str, list[list[float]]] = {name: [] for name in names.values()}
    for ann in data["annotations"]:
        if "center" in ann and "scale" in ann:
            (cx, cy), half = ann["center"], float(ann["scale"]) * 100.0
        else:
            x, y, w, h = ann["bbox"]
            cx, cy, half = x + w / 2, y + h / 2, max(w, h) / 2
        out[names[ann["image_id"]]].append([cx - half, cy - half, cx + half, cy + half])
    return out


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of boxes a (N, 4) and b (M, 4), x1 y1 x2 y2."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def matches(dets: np.ndarray, gts: np.ndarray, thr: float = 0.5) -> tuple[int, int]:
    """Greedy one-to-one matching by IoU (best score first): (ground truths found, detections unmatched)."""
    if not len(dets):
        return 0, 0
    m = iou(dets[:, :4], gts) if len(gts) else np.zeros((len(dets), 0))
    used: set[int] = set()
    for i in np.argsort(-dets[:, 4]):
        j = int(np.argmax(m[i])) if m.shape[1] else -1
        cand = [k for k in np.argsort(-m[i]) if k not in used and m[i, k] >= thr]
        if cand:
            used.add(int(cand[0]))
        del j
    return len(used), len(dets) - len(used)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/face_landmark_sample"))
    ap.add_argument("--score-thr", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    det = FaceDetector(score_thr=args.score_thr)
    raw = FaceDetector(score_thr=0.0)
    print(det.info)
    print("| data set | images (size) | faces | found (IoU>=0.5) | unmatched / image | ms / image |")
    print("|---|---|---|---|---|---|")
    rel = []
    for ds in DATASETS:
        gt_by_image = face_boxes(args.data / ds / f"{ds}_sample.json")
        faces = found = extra = 0
        times, sizes = [], []
        for name, gts in gt_by_image.items():
            rgb = read_image(args.data / ds / "images" / name)
            sizes.append(f"{rgb.shape[1]}x{rgb.shape[0]}")
            best = np.inf
            for _ in range(args.repeat):
                t = time.perf_counter()
                boxes = det(rgb)
                best = min(best, time.perf_counter() - t)
            times.append(best * 1000)
            g = np.asarray(gts)
            f, e = matches(boxes, g)
            faces, found, extra = faces + len(g), found + f, extra + e
            # the raw Haar box of each face (undo the correction) against its face box
            for box in raw(rgb):
                side = (box[2] - box[0]) / 0.91
                for gt in g:
                    gs, gc = gt[2] - gt[0], (gt[:2] + gt[2:]) / 2
                    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2 - 0.12 * side
                    if abs(cx - gc[0]) < gs / 3 and abs(cy - gc[1]) < gs / 2 and 0.6 < side / gs < 1.6:
                        rel.append((gs / side, (gc[0] - cx) / side, (gc[1] - cy) / side))
        print(
            f"| {ds} | {len(gt_by_image)} ({', '.join(sizes)}) | {faces} | {found}/{faces} | "
            f"{extra / len(gt_by_image):.1f} | {np.mean(times):.0f} |"
        )
    r = np.asarray(rel)
    print(
        f"raw Haar box vs face box ({len(r)} pairs): side ratio median {np.median(r[:, 0]):.3f} "
        f"(range {r[:, 0].min():.2f}-{r[:, 0].max():.2f}), centre offset x {np.median(r[:, 1]):+.3f}, "
        f"y {np.median(r[:, 2]):+.3f} Haar sides"
    )


if __name__ == "__main__":
    main()
