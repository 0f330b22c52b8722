"""``hrnet demo``: data -> train a small HRNet on the CPU -> COCO evaluation -> pictures, in minutes.

With no ``--data`` the demo renders its own synthetic COCO-format keypoint dataset (see
:mod:`hrnet.pose.synthetic`) under ``OUT/data`` (reused when present), trains a narrow HRNetV1 on it with
the pose core's ``train`` (the shared engine underneath), evaluates the held-out split with the full
COCO pipeline (flip test, back-projection, rescoring, OKS-NMS, pycocotools) and writes:

- ``OUT/metrics.json``: AP, AP50, AP75, APM, APL, AR (and the AR breakdown), GT person boxes;
- ``OUT/metrics_detections.json``: the same with the synthetic detections file (synthetic data only);
- ``OUT/predictions/*.jpg``: held-out images with the predicted skeletons drawn;
- ``OUT/training_curves.png`` and the run folder ``OUT/train`` (checkpoints, metrics.jsonl, config.yaml,
  model_best.safetensors, results_val.json).

``--data PATH`` instead takes a COCO-format keypoint folder with
``annotations/person_keypoints_{train,val}.json`` (or ``..._{train,val}2017.json``) and the images in
``images/{train,val}2017/``, ``{train,val}2017/`` or one flat ``images/`` folder.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrnet.atomic import write_json
from hrnet.engine.config import OptimConfig, ScheduleConfig, TrainConfig
from hrnet.engine.plots import plot_metrics
from hrnet.io import read_image, save_image
from hrnet.pose.config import PoseConfig, PoseDataConfig, PoseModelConfig, PoseTestConfig
from hrnet.pose.keypoints import load_keypoint_set
from hrnet.pose.synthetic import make_synthetic_coco
from hrnet.pose.train import evaluate, train
from hrnet.pose.visualize import draw_poses

log = logging.getLogger("hrnet.pose")

METRIC_KEYS = ("AP", "AP50", "AP75", "APM", "APL", "AR")


@dataclass(frozen=True)
class DemoSettings:
    """Sizes and recipe of the demo; the defaults are tuned to finish in minutes on two CPU cores."""

    num_train: int = 800
    num_val: int = 100
    image_size: tuple[int, int] = (256, 192)  # synthetic images (W, H)
    input_size: tuple[int, int] = (96, 128)  # crops (w, h); heatmaps are a quarter of it
    sigma: float = 1.5
    model: str = "pose_hrnet_w18_small_v1"
    overrides: dict[str, Any] = field(default_factory=lambda: {"stem_width": 32})
    epochs: int = 6
    batch_size: int = 32
    lr: float = 2e-3
    warmup_iters: int = 30
    workers: int = 1  # one loader process decodes and warps while the main process computes
    threads: int | None = None  # torch threads; None = the CPUs left after the loader workers
    eval_every: int = 2
    max_iters_per_epoch: int | None = None
    num_pictures: int = 6


def find_coco_layout(root: str | Path) -> dict[str, Path]:
    """The annotation files and image folders of a COCO-format keypoint dataset, or a clear error."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    found: dict[str, Path] = {}
    for split in ("train", "val"):
        anns = [root / "annotations" / f"person_keypoints_{split}{suffix}.json" for suffix in ("", "2017")]
        ann = next((a for a in anns if a.is_file()), None)
        if ann is None:
            raise FileNotFoundError(
                f"{root}: no {split} annotations; expected one of {', '.join(str(a.relative_to(root)) for a in anns)}"
            )
        dirs = [root / "images" / f"{split}2017", root / f"{split}2017", root / "images" / split, root / "images"]
        images = next((d for d in dirs if d.is_dir()), None)
        if images is None:
            raise FileNotFoundError(
                f"{root}: no {split} image folder; expected one of {', '.join(str(d.relative_to(root)) for d in dirs)}"
            )
        found[f"{split}_ann"], found[f"{split}_images"] = ann, images
    return found


def demo_config(
    layout: dict[str, Path], settings: DemoSettings, epochs: int, seed: int, boxes: str | Path = "gt"
) -> Any:
    """The :class:`~hrnet.pose.train.PoseConfig` of the demo run."""

    s = settings
    data = PoseDataConfig(
        dataset="coco",
        root=str(layout["train_ann"].parent.parent),
        train_ann=str(layout["train_ann"].resolve()),
        train_images=str(layout["train_images"].resolve()),
        val_ann=str(layout["val_ann"].resolve()),
        val_images=str(layout["val_images"].resolve()),
        input_size=list(s.input_size),
        sigma=s.sigma,
        rot_factor=20.0,
        rot_prob=0.5,
        scale_factor=0.25,
        flip=True,
        half_body_prob=0.1,
    )
    train = TrainConfig(
        epochs=epochs,
        batch_size=s.batch_size,
        workers=s.workers,
        seed=seed,
        optim=OptimConfig(name="adam", lr=s.lr),
        schedule=ScheduleConfig(name="cosine", warmup_iters=s.warmup_iters),
        eval_every=max(1, min(s.eval_every, epochs)),
        log_every=5,
        max_iters_per_epoch=s.max_iters_per_epoch,
    )
    test = PoseTestConfig(boxes=str(boxes), flip_test=True, batch_size=64, workers=0)
    model = PoseModelConfig(name=s.model, pretrained=None, overrides=dict(s.overrides))
    return PoseConfig(model=model, data=data, train=train, test=test)


def _print_table(title: str, metrics: dict[str, float]) -> None:
    print(title)
    print(" | ".join(f"{k:>6}" for k in METRIC_KEYS))
    print(" | ".join(f"{metrics.get(k, float('nan')):6.3f}" for k in METRIC_KEYS), flush=True)


def _write_json(obj: Any, path: Path) -> None:
    write_json(path, obj, indent=1)


def draw_predictions(
    results: list[dict], ann_file: Path, image_dir: Path, out_dir: Path, count: int, score_thr: float = 0.2
) -> list[Path]:
    """Draw the COCO-format ``results`` of the first ``count`` images of ``ann_file`` into ``out_dir``."""

    with open(ann_file, encoding="utf-8") as fh:
        images = json.load(fh)["images"]
    ks = load_keypoint_set("coco")
    by_image: dict[int, list[dict]] = {}
    for r in results:
        by_image.setdefault(int(r["image_id"]), []).append(r)
    written = []
    for entry in images[:count]:
        people = [r for r in by_image.get(int(entry["id"]), []) if r["score"] >= score_thr]
        kp = np.array([r["keypoints"] for r in people], dtype=np.float64)
        kp = kp.reshape(len(people), ks.num_keypoints, 3)
        rgb = read_image(image_dir / entry["file_name"])
        drawn = draw_poses(rgb, kp[..., :2], kp[..., 2], ks.skeleton, kpt_thr=0.2)
        written.append(save_image(out_dir / Path(entry["file_name"]).with_suffix(".jpg").name, drawn))
    return written


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_demo(data: str | None, out: str, epochs: int | None, seed: int, *, settings: DemoSettings | None = None) -> int:
    """Run the whole demo (see the module docstring); returns the process exit code (0 on success).

    The torch thread count is set to the CPUs not used by the loader workers for the run and restored
    afterwards: on a 2-core machine, 2 compute threads plus a loader process oversubscribe the cores and
    the spinning OpenMP threads make training several times slower than one thread.
    """
    s = settings or DemoSettings()
    threads = s.threads or max(1, _cpu_count() - s.workers)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(data, out, epochs, seed, s)
    finally:
        torch.set_num_threads(previous)


def _run(data: str | None, out: str, epochs: int | None, seed: int, s: DemoSettings) -> int:
    """The demo's steps: data, seeded training, evaluation (GT and detected boxes), pictures, curves."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if epochs is not None and epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {epochs}")
    n_epochs = s.epochs if epochs is None else int(epochs)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    detections: Path | None = None
    if data is None:
        paths = make_synthetic_coco(
            out_dir / "data", num_train=s.num_train, num_val=s.num_val, image_size=s.image_size, seed=seed
        )
        layout = {
            "train_ann": paths["train_json"],
            "train_images": paths["images"],
            "val_ann": paths["val_json"],
            "val_images": paths["images"],
        }
        detections = paths["detections"]
        print(
            f"synthetic dataset: {s.num_train} train + {s.num_val} val images in {paths['root']} "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    else:
        layout = find_coco_layout(data)
    cfg = demo_config(layout, s, n_epochs, seed)
    run_dir = out_dir / "train"
    t1 = time.perf_counter()
    # OUT/train is the demo's own run folder: a demo always trains from scratch, replacing an earlier one
    train(cfg, run_dir, exist_ok=True)
    t_train = time.perf_counter() - t1
    weights = run_dir / "model_best.safetensors"
    results_file = run_dir / "results_val.json"
    metrics = evaluate(cfg, weights, results_file=results_file)
    _print_table("held-out keypoint metrics (ground-truth person boxes, flip test, OKS-NMS, pycocotools):", metrics)
    _write_json(metrics, out_dir / "metrics.json")
    if detections is not None:
        det_cfg = replace(cfg, test=replace(cfg.test, boxes=str(detections.resolve())))
        det_metrics = evaluate(det_cfg, weights)
        _print_table("the same with the synthetic person detections file:", det_metrics)
        _write_json(det_metrics, out_dir / "metrics_detections.json")
    with open(results_file, encoding="utf-8") as fh:
        results = json.load(fh)
    pictures = draw_predictions(
        results, layout["val_ann"], layout["val_images"], out_dir / "predictions", s.num_pictures
    )
    plot_metrics(run_dir / "metrics.jsonl", out_dir / "training_curves.png")
    total = time.perf_counter() - t0
    print(
        f"training {t_train:.0f} s, total {total:.0f} s; wrote {out_dir / 'metrics.json'}, "
        f"{len(pictures)} pictures in {out_dir / 'predictions'}, {out_dir / 'training_curves.png'}",
        flush=True,
    )
    return 0
