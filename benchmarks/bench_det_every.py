"""What ``det_every`` (pose tracking's detection frequency) buys and costs, on a clip made of a real photo.

Accuracy: a camera pans and zooms over a COCO photo with its annotated people (000000197388.jpg: five
people with at least 8 labelled keypoints), so every frame's true boxes and keypoints are known. The
detector is an oracle (the true boxes); the pose model is an oracle limited to its crop: it returns the
true keypoints that lie inside the box grown by 1.25 (the crop pose estimation sees) and nothing outside.
That isolates the cost of carrying boxes from keypoints: people that move out of the carried box lose
keypoints, and boxes drift. Reported: tracked boxes against the true boxes (MOTA, IDF1, ID switches,
py-motmetrics) and the share of labelled keypoints recovered.

Speed: the same loop with the real networks (random weights: speed does not depend on them): a person
detector (--detector light: torchvision's fasterrcnn_mobilenet_v3_large_320_fpn; default: the
Keypoint R-CNN R50-FPN of the default person detector, made lean as the pose facade runs it) and pose_hrnet_w32 256x192,
``PoseEstimator.track`` on 20 frames at 640x392 (10 with the default detector) for each det_every.

    python benchmarks/bench_det_every.py [--speed [--detector light|default]]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from hrnet.inputs import Frame
from hrnet.track import TrackOptions, VideoTracker, box_iou, evaluate_arrays

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_kpt_sample"
IMAGE_ID = 197388
FRAMES = 60


def people() -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """True xyxy boxes (P, 4), keypoints (P, 17, 2), visibility (P, 17) and the file of the photo."""
    d = json.loads((DATA / "person_keypoints_sample.json").read_text())
    anns = [a for a in d["annotations"] if a["image_id"] == IMAGE_ID and a["num_keypoints"] >= 8 and not a["iscrowd"]]
    boxes = np.array(
        [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns]
    )
    kp = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(len(anns), 17, 3)
    name = next(i["file_name"] for i in d["images"] if i["id"] == IMAGE_ID)
    return boxes, kp[..., :2], kp[..., 2] > 0, str(DATA / "images" / name)


def camera(f: int, speed: float) -> np.ndarray:
    """2x3 affine of frame ``f``: a pan of ``speed`` px/frame left and right and a slow zoom in and out."""
    s = 1.0 + 0.15 * np.sin(f / 15)
    tx = speed * 15 * np.sin(f / 8)
    return np.array([[s, 0, tx - 320 * (s - 1)], [0, s, -196 * (s - 1)]])


def move(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    return points @ m[:, :2].T + m[:, 2]


def simulate(det_every: int, speed: float) -> dict:
    boxes0, kps0, vis, _ = people()
    tracker = VideoTracker(TrackOptions(det_every=det_every, smooth="none"), np.full(17, 0.079))
    rows, gt_rows, found, total = [], [], 0, 0
    for f in range(FRAMES):
        m = camera(f, speed)
        corners = move(boxes0.reshape(-1, 2), m).reshape(-1, 4)
        kps = move(kps0.reshape(-1, 2), m).reshape(kps0.shape)
        tracker.start(Frame(None, None, f, time=f / 25))
        boxes = np.c_[corners, np.ones(len(corners))] if tracker.should_detect() else tracker.carried_boxes()
        owner = box_iou(boxes[:, :4], corners).argmax(1)
        grown = boxes[:, :4].copy()
        c, half = (grown[:, :2] + grown[:, 2:]) / 2, (grown[:, 2:] - grown[:, :2]) / 2 * 1.25
        pose = kps[owner]
        inside = (pose >= (c - half)[:, None]).all(-1) & (pose <= (c + half)[:, None]).all(-1) & vis[owner]
        scores = inside.astype(np.float64)
        ids, _ = tracker.update(boxes[:, :4], boxes[:, 4], None, pose, scores)
        for p in range(len(corners)):
            total += int(vis[p].sum())
            mine = owner == p
            found += int(inside[mine].any(0).sum()) if mine.any() else 0
            gt_rows.append([f + 1, p + 1, *corners[p, :2], *(corners[p, 2:] - corners[p, :2]), 1])
        for i, b in zip(ids, boxes[:, :4]):
            rows.append([f + 1, i, *b[:2], *(b[2:] - b[:2]), 1])
    m = evaluate_arrays(np.array(gt_rows), np.array(rows))
    return {"mota": m["mota"], "idf1": m["idf1"], "switches": m["num_switches"], "keypoints": found / total}


def speed_table(which: str) -> None:
    import torch
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn, keypointrcnn_resnet50_fpn

    from hrnet.pose import PoseEstimator
    from hrnet.pose.detector import lean_person_detector

    torch.set_num_threads(2)
    boxes0, _, _, photo = people()
    image = cv2.imread(photo)
    if which == "default":  # as the pose facade runs it: lean (boxes only, BN folded, channels-last)
        net = lean_person_detector(keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None).eval(), 0.5)
    else:
        net = fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None).eval()
    count = 10 if which == "default" else 20  # the R50 detector takes seconds a frame on a CPU
    frames = [
        cv2.warpAffine(image, camera(f, 4), (image.shape[1], image.shape[0]))[:, :, ::-1].copy() for f in range(count)
    ]

    def detector(rgb: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            net([torch.from_numpy(rgb).permute(2, 0, 1).float() / 255])  # the cost of a real detector
        return np.c_[boxes0, np.ones(len(boxes0))]  # the boxes of the photo (speed only)

    est = PoseEstimator("pose_hrnet_w32", detector=detector, runtime="torch", device="cpu")
    est.track(frames[:2])  # warm-up
    base = None
    for n in (1, 2, 5, 10):
        t = time.perf_counter()
        est.track(frames, det_every=n)
        ms = (time.perf_counter() - t) / len(frames) * 1000
        base = base or ms
        print(f"{which} detector, det_every {n:>2}: {ms:7.1f} ms/frame  speed-up {base / ms:4.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speed", action="store_true", help="also time the real networks (minutes on a CPU)")
    ap.add_argument(
        "--detector",
        choices=("light", "default"),
        default="light",
        help="the timed detector: light (Faster R-CNN MobileNetV3-L 320 FPN) or default (Keypoint R-CNN R50-FPN, "
        "the default person detector's architecture)",
    )
    args = ap.parse_args()
    print("| peak motion (px/frame) | det_every | MOTA | IDF1 | ID switches | keypoints recovered |")
    print("|---|---|---|---|---|---|")
    for speed in (2.0, 10.0, 25.0, 50.0):
        for n in (1, 2, 5, 10):
            r = simulate(n, speed)
            cells = f"{r['mota']:.3f} | {r['idf1']:.3f} | {r['switches']} | {r['keypoints']:.3f}"
            print(f"| {speed * 15 / 8:.0f} | {n} | {cells} |")
    if args.speed:
        speed_table(args.detector)


if __name__ == "__main__":
    main()
