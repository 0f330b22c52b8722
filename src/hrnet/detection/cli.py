"""``hrnet det train | eval | predict | check-data``: the command line of the detection task.

* ``train --config YAML [--set key=value ...] --out DIR [--resume CKPT]``: the paper's recipes through the
  shared engine; works under ``torchrun`` (DDP); writes a carded ``model_best.safetensors``.
* ``eval --config YAML --weights FILE [--json [OUT]] [--results FILE] [--per-class]``: the 12 COCO numbers
  for boxes (and masks / keypoints where the model has them) through pycocotools; ``--json`` writes the
  metric dict (``bbox_AP`` ... ``bbox_ARl`` as fractions in [0, 1]), ``--results`` the COCO results.
* ``predict INPUT... --weights FILE [--score-thr 0.05]``: the shared predict flags
  (:func:`hrnet.cli_common.add_predict_verb`); pictures with the boxes (and masks) drawn and
  ``RUN/results.json`` with every image's detections as COCO results in the dataset's category ids.
"""

from __future__ import annotations

import argparse
import functools
import json
import os

from hrnet.cli_common import (
    add_eval_verb,
    add_predict_verb,
    add_train_verb,
    emit_json,
    run_predict,
    setup_logging,
)

STAT_PREFIXES = ("bbox", "segm", "kpt")


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """Add the ``train``, ``eval``, ``predict`` and ``check-data`` verbs to ``hrnet det``."""
    sub = parser.add_subparsers(dest="verb", required=True)
    from hrnet.detection.check import add_check_data  # the data check verb lives with the check

    add_check_data(sub)

    example = "train.optim.lr=0.01 data.root=/data/coco"
    add_train_verb(
        sub,
        help="train a detector from a config (torchrun for several processes)",
        example_config="configs/det/faster_rcnn/w32_1x.yaml",
        default_out="runs/det",
        func=cmd_train,
        example=example,
    )

    p = add_eval_verb(
        sub,
        help="COCO box (and mask) AP / AR of weights on the validation set",
        weights_help="detection weights (ours, official HRNet or mmdet checkpoints)",
        json_what="the metric dict",
        func=cmd_eval,
        example=example,
    )
    p.add_argument("--results", default=None, metavar="FILE", help="write the COCO-format detection results")
    p.add_argument("--per-class", action="store_true", default=None, help="also the box (and mask) AP of each class")

    p = add_predict_verb(
        sub,
        task="det",
        help="boxes, classes and masks in images, folders, globs and videos",
        func=cmd_predict,
        example="test.score_thresh=0.3",
    )
    p.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="class count for weights without a card (must match the file; default 80, COCO)",
    )
    p.add_argument(
        "--score-thr", type=float, default=None, help="keep detections scored at least this (default: the card's, 0.05)"
    )
    p.add_argument("--nms-thr", type=float, default=None, help="NMS IoU threshold (default: the card's, 0.5)")
    p.add_argument("--max-det", type=int, default=None, help="detections per image (default: the card's, 100)")
    p.add_argument(
        "--min-size",
        type=int,
        default=None,
        help="shorter image side fed to the network (default: the card's test size, 800)",
    )
    p.add_argument("--max-size", type=int, default=None, help="longer side at most (default: the card's, 1333)")
    p.add_argument("--bgr", action="store_true", help="feed BGR, for official weights without a card that need it")
    p.add_argument("--draw-thr", type=float, default=0.3, help="draw detections scored at least this")
    p.add_argument("--alpha", type=float, default=0.5, help="mask overlay opacity")
    p.add_argument("--no-masks", action="store_true", help="draw boxes only")


def _config(args: argparse.Namespace):
    from hrnet.detection.config import DetConfig
    from hrnet.engine.config import load_config

    return load_config(DetConfig, args.config, args.overrides)


def cmd_train(args: argparse.Namespace) -> int:
    """``hrnet det train``."""
    from hrnet.detection.train import train

    setup_logging()
    metrics = train(_config(args), args.out, resume=args.resume, device=args.device)
    if metrics and int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(metrics, indent=2))
    return 0


def print_metrics(metrics: dict[str, float]) -> None:
    """One header + values table per IoU type (the 12 COCO numbers), then any per-class AP."""
    for prefix in STAT_PREFIXES:
        keys = [k for k in metrics if k.startswith(prefix + "_") and "[" not in k]
        if keys:
            print(f"{prefix:<5} " + " ".join(f"{k[len(prefix) + 1 :]:>6}" for k in keys))
            print(f"{'':<5} " + " ".join(f"{metrics[k]:6.3f}" for k in keys))
    for k, v in metrics.items():
        if "[" in k:
            print(f"  {k:<40} {v:.3f}")


def cmd_eval(args: argparse.Namespace) -> int:
    """``hrnet det eval``."""
    from hrnet.detection.train import evaluate
    from hrnet.engine.distributed import init_distributed

    setup_logging()
    cfg = _config(args)
    dist = init_distributed(args.device)
    metrics = evaluate(cfg, args.weights, results_file=args.results, dist=dist, per_class=args.per_class)
    if dist.is_main:
        if args.json != "-":
            print_metrics(metrics)
        emit_json(metrics, args.json)
    return 0


def _detector(args: argparse.Namespace):
    """The :class:`Detector` of the predict flags: a carded ``--weights`` file needs nothing else;
    ``--config`` / ``--model`` / ``--num-classes`` describe weights without a card."""
    from hrnet.detection.api import Detector

    opts = dict(
        num_classes=args.num_classes,
        score_thr=args.score_thr,
        nms_thr=args.nms_thr,
        max_detections=args.max_det,
        min_size=args.min_size,
        max_size=args.max_size,
        batch_size=args.batch_size,
        device=args.device,
        runtime=args.runtime,
    )
    if args.config or args.overrides:
        from hrnet.detection.model import build_model
        from hrnet.models.card import read_card

        cfg = _config(args)
        if args.bgr:
            cfg.model.bgr = True
        card = read_card(args.weights) if args.weights else None
        n = args.num_classes or (card.num_outputs if card is not None else 80)
        return Detector(build_model(cfg, n, pretrained=False), args.weights, **opts)
    if args.weights is None and args.model is None:
        raise ValueError(
            "det predict needs --weights (a weights file with a model card is enough), "
            "or --model NAME for random weights"
        )
    if args.model is None:
        if args.bgr:
            raise ValueError("--bgr applies to --model NAME with weights without a card (a card says it itself)")
        return Detector(args.weights, **opts)
    return Detector(args.model, args.weights, **opts, **({"bgr": True} if args.bgr else {}))


def cmd_predict(args: argparse.Namespace) -> int:
    """``hrnet det predict``: see :func:`hrnet.cli_common.run_predict` for the outputs."""
    setup_logging()
    det = _detector(args)

    def predict(frames):  # noqa: ANN001, ANN202 - list[Frame] -> list[DetResult]
        results = det.predict_frames(frames)
        for r in results:
            r.plot = functools.partial(r.plot, score_thr=args.draw_thr, alpha=args.alpha, show_masks=not args.no_masks)
        return results

    info = {
        "model": det.card.model if det.card else (args.model or ""),
        "weights": args.weights,
        "classes": det.class_names,
        "category_ids": det.category_ids,
        "runtime": det.runtime,
        **det.test,
    }
    return run_predict(args, task="det", predict=predict, info=info)
