"""Photo -> people -> keypoints, end to end: our defaults beside the official HRNet demo pipeline, one run.

    python benchmarks/bench_pipeline.py                  # CPU, the COCO sample photos, 3 rounds (~15 min on 2 cores)
    python benchmarks/bench_pipeline.py --rounds 1 --quick   # only the default and light detectors

The official repository's demo (``demo/demo.py``) runs a torchvision detector (Faster R-CNN R50-FPN, as built
with its COCO weights: frozen batch norm), then, for every person box, one crop at a time: the affine
warp, normalisation, the eager HRNet (no flip test) and the argmax decoding. That pipeline is rebuilt here
from our own parts doing the same work per box (:func:`hrnet.pose.inference.crop_people` and
:func:`~hrnet.pose.inference.predict_crops` at batch 1, unfused model), and run with its own detector and
with ours (Keypoint R-CNN R50-FPN), so each of our rows has a baseline with the same detector.

Ours is what ``hrnet pose predict photo.jpg`` runs: :class:`hrnet.pose.detector.PersonDetector` (box-only,
batch norm folded, box threshold raised to the 0.5 we keep) and :class:`hrnet.pose.PoseEstimator` with the
default entry's card (W32 256x192, flip test) and ``runtime="auto"``; also without flip test (the demo's
work) and with the light detectors.

Weights are random, of the same architectures (no weights are downloaded): a forward costs the same
whatever the values, with two exceptions that are fixed here so both pipelines do the same work:

- how many boxes a detector keeps: every detector's box classifier is set to "background", so no
  detection reaches Keypoint R-CNN's keypoint head in the baseline (a real photo would make the baseline
  slower: its keypoint head runs on every detection scored above 0.05, which ours drops);
- how many people the pose network sees: both pipelines get the same person boxes per photo, those of the
  COCO sample's detection file (``person_detection_results_AP_H_56_sample.json``, a 56 AP detector's
  boxes, the ones HRNet's paper evaluates with) scored at least 0.5.

Detector and pose are timed separately on each photo (warm: one untimed pass on the first photo first).
Each side runs in a fresh process of its own (so no onnxruntime thread of ours runs beside the demo's
torch), the two alternating round by round; each stage's best round is reported (on a shared machine
the other rounds measure the neighbours: a round of the demo's pose once took 25 times its best).
Never run by the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

import hrnet
from hrnet import pretrained
from hrnet.pose import PoseEstimator
from hrnet.pose.codec import HeatmapCodec
from hrnet.pose.detector import PersonDetector, build_detector
from hrnet.pose.inference import crop_people, predict_crops
from hrnet.pose.keypoints import COCO_KEYPOINTS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_kpt_sample"
SCORE_THR = 0.5
# name in the table -> (torchvision architecture, classes with the background)
DETECTORS = {
    "Faster R-CNN R50-FPN": ("fasterrcnn_resnet50_fpn", 91),
    "Keypoint R-CNN R50-FPN": ("keypointrcnn_resnet50_fpn", 2),
    "Faster R-CNN MobileNetV3-L FPN": ("fasterrcnn_mobilenet_v3_large_fpn", 91),
    "Faster R-CNN MobileNetV3-L 320 FPN": ("fasterrcnn_mobilenet_v3_large_320_fpn", 91),
}


def photos_and_boxes() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, RGB image, person boxes x1 y1 x2 y2 score) of each sample photo."""
    dets = json.loads((DATA / "person_detection_results_AP_H_56_sample.json").read_text())
    out = []
    for path in sorted((DATA / "images").glob("*.jpg")):
        image_id = int(path.stem)
        boxes = [
            [x, y, x + w, y + h, d["score"]]
            for d in dets
            if d["image_id"] == image_id and d["category_id"] == 1 and d["score"] >= SCORE_THR
            for x, y, w, h in [d["bbox"]]
        ]
        out.append((path.name, np.asarray(Image.open(path).convert("RGB")), np.asarray(boxes, np.float32)))
    return out


def _frozen(model: nn.Module) -> nn.Module:
    """``model`` with every BatchNorm2d replaced by torchvision's FrozenBatchNorm2d (same statistics): the
    detector as torchvision builds it when given its COCO weights, which the official demo loads."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.BatchNorm2d:
                frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
                for key in ("weight", "bias", "running_mean", "running_var"):
                    getattr(frozen, key).copy_(getattr(child, key).detach())
                setattr(module, name, frozen)
    return model


def random_detector(arch: str, classes: int, folder: Path) -> tuple[nn.Module, Path]:
    """A random detector whose box classifier says "background" everywhere, and its state dict file."""
    torch.manual_seed(0)
    model = build_detector(arch, classes).eval()
    with torch.no_grad():
        predictor = model.roi_heads.box_predictor
        predictor.cls_score.weight.zero_()
        predictor.cls_score.bias.zero_()
        predictor.cls_score.bias[0] = 20.0
    path = folder / f"{arch}.pth"
    torch.save(model.state_dict(), path)
    return model, path


def official_detector(model: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """The demo's person boxes: the full torchvision model (frozen BN, every head), then the person class
    above the threshold, picked in Python."""
    net = _frozen(model).eval()

    @torch.no_grad()
    def run(rgb: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(rgb / 255.0).permute(2, 0, 1).float()
        out = net([x])[0]
        keep = (out["labels"] == 1) & (out["scores"] > SCORE_THR)
        return torch.cat([out["boxes"][keep], out["scores"][keep, None]], 1).numpy()

    return run


def official_pose(model: nn.Module, size: tuple[int, int]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The demo's keypoints: per box, one crop at a time (warp, normalise), the eager network at batch 1,
    argmax decoding; no flip test."""
    codec = HeatmapCodec((size[1], size[0]))
    net = model.eval()

    @torch.no_grad()
    def run(rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        out = []
        for box in boxes:
            crop, center, scale = crop_people(rgb, box[None, :4], codec.input_size)
            kpts, _ = predict_crops(net, crop, center, scale, codec, COCO_KEYPOINTS.flip_pairs, flip_test=False)
            out.append(kpts[0])
        return np.asarray(out)

    return run


def timed(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def build_stages(side: str, names: list[str], folder: Path) -> dict[str, Callable[..., object]]:
    """The timed stages of one side (``demo`` or ``ours``): ``det <label>`` take an RGB image, ``pose <label>``
    an RGB image and its boxes. Weights are made from fixed seeds, so both sides' processes get the same."""
    card = pretrained.entry_card(pretrained.task_default("pose"))  # what `hrnet pose predict` runs
    torch.manual_seed(0)
    weights = hrnet.save_weights(pretrained._model_from_card(card), folder / f"pose-{side}.safetensors", card=card)
    stages: dict[str, Callable[..., object]] = {}
    for name in names:
        arch, classes = DETECTORS[name]
        model, path = random_detector(arch, classes, folder)
        if side == "demo" and name in ("Faster R-CNN R50-FPN", "Keypoint R-CNN R50-FPN"):
            stages[f"det demo | {name}"] = official_detector(model)
        elif side == "ours":
            stages[f"det ours | {name}"] = PersonDetector(path, score_thr=SCORE_THR, arch=arch, num_classes=classes)
    if side == "demo":
        base_pose = official_pose(hrnet.load_model(weights), tuple(card.input_size))
        stages["pose demo"] = base_pose
    else:
        flip = PoseEstimator(weights, device="cpu", detector=None)
        noflip = PoseEstimator(weights, device="cpu", detector=None, flip_test=False)
        stages["pose ours, flip"] = lambda rgb, boxes: flip(rgb, boxes=boxes)
        stages["pose ours, no flip"] = lambda rgb, boxes: noflip(rgb, boxes=boxes)
    return stages


def worker(side: str, names: list[str], threads: int) -> dict[str, float]:
    """One side in its own process (no onnxruntime thread of ours ever runs beside the demo's torch), warmed
    up on the first photo, then every photo once: seconds per stage over all photos."""
    torch.set_num_threads(threads)
    photos = photos_and_boxes()
    stages = build_stages(side, names, Path(tempfile.mkdtemp(prefix=f"bench-pipeline-{side}-")))
    _, rgb0, boxes0 = photos[0]
    for key, fn in stages.items():  # first-call costs: ONNX export / session, allocations
        fn(rgb0) if key.startswith("det ") else fn(rgb0, boxes0)
    total = dict.fromkeys(stages, 0.0)
    for _, rgb, boxes in photos:
        for key, fn in stages.items():
            total[key] += timed(fn, rgb) if key.startswith("det ") else timed(fn, rgb, boxes)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="only Keypoint R-CNN and the 320 light detector")
    parser.add_argument("--json", default=None, help="write the raw timings here")
    parser.add_argument("--worker", choices=("demo", "ours"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = list(DETECTORS)
    if args.quick:
        names = ["Keypoint R-CNN R50-FPN", "Faster R-CNN MobileNetV3-L 320 FPN"]
    if args.worker:
        print(json.dumps(worker(args.worker, names, args.threads)))
        return

    photos = photos_and_boxes()
    people = sum(len(b) for _, _, b in photos)
    n = len(photos)
    # one shared export cache: ours exports its ONNX graph once, in the first round (outside the timings)
    env = {**os.environ, "HRNET_CACHE": tempfile.mkdtemp(prefix="bench-pipeline-cache-")}
    times: dict[str, list[float]] = {}
    for _ in range(args.rounds):  # the two sides alternate, each in a fresh process
        for side in ("demo", "ours"):
            cmd = [sys.executable, __file__, "--worker", side, "--threads", str(args.threads)]
            cmd += ["--quick"] if args.quick else []
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            for key, value in json.loads(out.strip().splitlines()[-1]).items():
                times.setdefault(key, []).append(value)
    med = {k: min(v) for k, v in times.items()}  # the best round of each stage

    def row(label: str, det: str, pose: str, base: tuple[str, str] | None) -> str:
        d, p = med[f"det {det}"] / n, med[f"pose {pose}"] / n
        per_person = med[f"pose {pose}"] / people
        speed = ""
        if base is not None:
            ref = med[f"det {base[0]}"] + med[f"pose {base[1]}"]
            speed = f"{ref / (med[f'det {det}'] + med[f'pose {pose}']):.2f}x"
        return f"| {label} | {d * 1e3:.0f} | {p * 1e3:.0f} | {per_person * 1e3:.0f} | {(d + p) * 1e3:.0f} | {speed} |"

    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
        f"{n} photos, {people} people (boxes scored >= {SCORE_THR}), best of {args.rounds} rounds"
    )
    print("| pipeline | detector ms/photo | pose ms/photo | pose ms/person | total ms/photo | speed-up |")
    print("|---|---|---|---|---|---|")
    frcnn, krcnn = "Faster R-CNN R50-FPN", "Keypoint R-CNN R50-FPN"
    has_frcnn = f"det demo | {frcnn}" in med
    if has_frcnn:
        print(row(f"official demo: {frcnn}, eager W32 per box", f"demo | {frcnn}", "demo", None))
    print(row(f"official demo with {krcnn}", f"demo | {krcnn}", "demo", None))
    same = (f"demo | {krcnn}", "demo")
    print(row(f"ours default: {krcnn}, W32 flip test", f"ours | {krcnn}", "ours, flip", same))
    print(row(f"ours: {krcnn}, no flip (the demo's work)", f"ours | {krcnn}", "ours, no flip", same))
    if has_frcnn:
        print(row(f"ours: {frcnn}, no flip", f"ours | {frcnn}", "ours, no flip", (f"demo | {frcnn}", "demo")))
    base = (f"demo | {frcnn}", "demo") if has_frcnn else same
    for light in ("Faster R-CNN MobileNetV3-L FPN", "Faster R-CNN MobileNetV3-L 320 FPN"):
        if f"det ours | {light}" in med:
            print(row(f"ours light: {light}, W32 flip test", f"ours | {light}", "ours, flip", base))
            print(row(f"ours light: {light}, no flip", f"ours | {light}", "ours, no flip", base))
    print(
        f"(speed-up: against the official demo with the same detector; light rows against the demo's "
        f"{base[0].split(' | ')[1]})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"photos": n, "people": people, "seconds": times}, indent=1))


if __name__ == "__main__":
    main()
