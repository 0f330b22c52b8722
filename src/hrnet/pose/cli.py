"""``hrnet pose train | eval | predict``: the command line of the pose task.

* ``train --config YAML [--set key=value ...] [--resume CKPT] [--out DIR]``: works under ``torchrun``.
* ``eval --config YAML --weights W [--json OUT] [--results FILE]``: prints AP / AP50 / AP75 / APM / APL / AR
  (PCKh for MPII); ``--json`` writes the metric dict, ``--results`` the COCO-format predictions.
* ``predict --weights W INPUT... [--boxes FILE] [--detector-weights FILE] [--out DIR]``: images, folders and
  videos -> ``DIR/results.json`` (COCO results, with ``file_name``) and pictures / videos with skeletons.
  ``--boxes`` is a JSON mapping file name (or stem) -> [[x1, y1, x2, y2(, score)], ...], or a COCO
  detections list whose ``image_id`` is the numeric file stem (COCO names). Without boxes and without a
  detector, each whole image is one person.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from hrnet.engine.config import add_run_options, add_train_verb


def _setup_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """Add the ``train``, ``eval`` and ``predict`` verbs to ``hrnet pose``."""
    sub = parser.add_subparsers(dest="verb", required=True)

    example = "train.optim.lr=5e-4 data.root=/data/coco"
    add_train_verb(sub, help="train a pose model from a config (torchrun for several processes)",
                   example_config="configs/pose/coco/w32_256x192.yaml", default_out="runs/pose", func=cmd_train,
                   example=example)

    p = sub.add_parser("eval", help="COCO AP/AR (or MPII PCKh) of weights on the validation set")
    p.add_argument("--config", required=True)
    p.add_argument("--weights", required=True, help="pose weights (ours, official HRNet or mmpose checkpoints)")
    p.add_argument("--json", default=None, metavar="OUT", help="write the metric dict as JSON")
    p.add_argument("--results", default=None, metavar="FILE", help="write the COCO-format keypoint results")
    add_run_options(p, example)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="poses in images, folders and videos")
    p.add_argument("inputs", nargs="+", help="image / video files or folders")
    p.add_argument("--weights", required=True, help="pose weights file")
    p.add_argument("--config", default=None, help="experiment YAML (model, keypoint set, input size, test)")
    p.add_argument("--model", default="pose_hrnet_w32", help="model name when no config is given")
    p.add_argument("--keypoint-set", default="coco", help="built-in set or YAML when no config is given")
    p.add_argument("--input-size", nargs=2, type=int, default=None, metavar=("W", "H"),
                   help="crop size when no config is given (default 192 256)")
    p.add_argument("--boxes", default=None, help="person boxes JSON (see `hrnet pose --help`)")
    p.add_argument("--detector-weights", default=None, help="torchvision person detector weights")
    p.add_argument("--det-thr", type=float, default=0.5, help="detector score threshold")
    p.add_argument("--det-arch", default="fasterrcnn_resnet50_fpn",
                   help="torchvision detection architecture the detector weights belong to")
    p.add_argument("--kpt-thr", type=float, default=0.3, help="draw keypoints scored above this")
    p.add_argument("--no-flip", action="store_true", help="no flip test (faster)")
    p.add_argument("--dark", action="store_true", help="DARK sub-pixel decoding")
    p.add_argument("--out", default="runs/pose_predict")
    p.add_argument("--device", default=None)
    p.add_argument("--debug", action="store_true")
    p.set_defaults(func=cmd_predict)


def cmd_train(args: argparse.Namespace) -> int:
    from hrnet.engine.config import load_config
    from hrnet.pose.config import PoseConfig
    from hrnet.pose.train import train

    _setup_logging()
    cfg = load_config(PoseConfig, args.config, args.overrides)
    metrics = train(cfg, args.out, resume=args.resume, device=args.device)
    if metrics:
        print(json.dumps(metrics, indent=2))
    return 0


def print_metrics(metrics: dict[str, float]) -> None:
    """A one-line header + values table (the paper's column order)."""
    keys = list(metrics)
    print(" | ".join(f"{k:>8}" for k in keys))
    print(" | ".join(f"{metrics[k]:8.4f}" for k in keys))


def cmd_eval(args: argparse.Namespace) -> int:
    from hrnet.engine.config import load_config
    from hrnet.engine.distributed import init_distributed
    from hrnet.pose.api import write_json
    from hrnet.pose.config import PoseConfig
    from hrnet.pose.train import evaluate

    _setup_logging()
    cfg = load_config(PoseConfig, args.config, args.overrides)
    dist = init_distributed(args.device)
    metrics = evaluate(cfg, args.weights, results_file=args.results, dist=dist)
    if dist.is_main:
        print_metrics(metrics)
        if args.json:
            write_json(metrics, args.json)
    return 0


def _load_boxes(path: str) -> dict[str, np.ndarray]:
    """Boxes file -> {file name or stem: (N, 5) xyxy + score}."""
    from hrnet.pose.api import as_xyxy_boxes

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{p}: cannot read the boxes file ({err})") from err
    out: dict[str, list] = {}
    if isinstance(data, dict):
        for name, boxes in data.items():
            try:
                out[str(name)] = as_xyxy_boxes(boxes).tolist()
            except ValueError as err:
                raise ValueError(f"{p}: boxes of {name!r}: {err}") from err
    elif isinstance(data, list):
        for i, det in enumerate(data):
            if not isinstance(det, dict) or "image_id" not in det or "bbox" not in det:
                raise ValueError(f"{p}: entry {i} is not a detection {{image_id, bbox, score}}")
            if int(det.get("category_id", 1)) != 1:
                continue
            x, y, w, h = det["bbox"]
            if w <= 0 or h <= 0:
                continue
            out.setdefault(str(det["image_id"]), []).append([x, y, x + w, y + h, det.get("score", 1.0)])
    else:
        raise ValueError(f"{p}: expected a mapping file -> boxes or a list of COCO detections")
    return {k: np.asarray(v, dtype=np.float64).reshape(-1, 5) for k, v in out.items()}


def _boxes_for(table: dict[str, np.ndarray], file: Path) -> np.ndarray | None:
    for key in (file.name, file.stem, str(int(file.stem)) if file.stem.isdigit() else None):
        if key is not None and key in table:
            return table[key]
    return None


def _draw(result, rgb: np.ndarray, kpt_thr: float) -> np.ndarray:
    try:
        return result.plot(rgb, kpt_thr=kpt_thr)
    except ImportError:  # drawing module unavailable: plain circles and lines
        import cv2

        img = rgb.copy()
        for kp, sc in zip(result.keypoints, result.scores):
            for a, b in result.keypoint_set.skeleton:
                if sc[a] > kpt_thr and sc[b] > kpt_thr:
                    cv2.line(img, tuple(int(v) for v in kp[a]), tuple(int(v) for v in kp[b]), (0, 255, 0), 2)
            for (x, y), s in zip(kp, sc):
                if s > kpt_thr:
                    cv2.circle(img, (int(x), int(y)), 3, (255, 0, 0), -1)
        return img


def cmd_predict(args: argparse.Namespace) -> int:
    import cv2

    from hrnet.io import VIDEO_SUFFIXES, list_inputs, read_image
    from hrnet.pose.api import PoseEstimator, write_json

    _setup_logging()
    log = logging.getLogger("hrnet.pose")
    device = args.device or "cpu"
    if args.config:
        from hrnet.engine.config import load_config
        from hrnet.pose.config import PoseConfig
        from hrnet.pose.model import build_model

        cfg = load_config(PoseConfig, args.config)
        model = build_model(cfg, pretrained=False)
        estimator = PoseEstimator(model, args.weights, cfg.data.keypoint_set, tuple(cfg.data.input_size), device,
                                  flip_test=not args.no_flip, dark=args.dark)
    else:
        size = tuple(args.input_size) if args.input_size else (192, 256)
        estimator = PoseEstimator(args.model, args.weights, args.keypoint_set, size, device,
                                  flip_test=not args.no_flip, dark=args.dark)
    table = _load_boxes(args.boxes) if args.boxes else None
    detector = None
    if table is None and args.detector_weights:
        from hrnet.pose.detector import PersonDetector

        detector = PersonDetector(args.detector_weights, score_thr=args.det_thr, arch=args.det_arch)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    files = list_inputs(args.inputs)
    for n, file in enumerate(files):
        image_id: int | str = int(file.stem) if file.stem.isdigit() else n
        if file.suffix.lower() in VIDEO_SUFFIXES:
            cap = cv2.VideoCapture(str(file))
            if not cap.isOpened():
                raise ValueError(f"{file}: cannot open video")
            fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            writer = None
            frame_idx = 0
            try:
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                    res = estimator(rgb, detector=detector)
                    for r in res.to_json(image_id=frame_idx):
                        results.append({**r, "file_name": file.name, "frame": frame_idx})
                    drawn = cv2.cvtColor(_draw(res, rgb, args.kpt_thr), cv2.COLOR_RGB2BGR)
                    if writer is None:
                        writer = cv2.VideoWriter(str(out / f"{file.stem}_pose.mp4"),
                                                 cv2.VideoWriter_fourcc(*"mp4v"), fps, drawn.shape[1::-1])
                    writer.write(drawn)
                    frame_idx += 1
            finally:
                cap.release()
                if writer is not None:
                    writer.release()
            log.info("%s: %d frames", file, frame_idx)
            continue
        rgb = read_image(file)
        boxes = _boxes_for(table, file) if table is not None else None
        if table is not None and boxes is None:
            log.warning("%s: no boxes in %s; skipped", file, args.boxes)
            continue
        res = estimator(rgb, boxes=boxes, detector=detector)
        for r in res.to_json(image_id=image_id):
            results.append({**r, "file_name": file.name})
        cv2.imwrite(str(out / f"{file.stem}_pose.jpg"), cv2.cvtColor(_draw(res, rgb, args.kpt_thr),
                                                                      cv2.COLOR_RGB2BGR))
        log.info("%s: %d people", file, len(res))
    write_json(results, out / "results.json")
    print(f"wrote {len(results)} poses for {len(files)} inputs to {out}", file=sys.stderr)
    return 0
