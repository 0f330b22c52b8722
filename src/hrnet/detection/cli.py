"""``hrnet det train | eval | predict | check-data``: the command line of the detection task.

* ``train --config YAML [--set key=value ...] --out DIR [--resume CKPT]``: the paper's recipes through the
  shared engine; works under ``torchrun`` (DDP); writes a carded ``model_best.safetensors``.
* ``eval --config YAML --weights FILE [--json [OUT]] [--results FILE] [--per-class]``: the 12 COCO numbers
  for boxes (and masks / keypoints where the model has them) through pycocotools; ``--json`` writes the
  metric dict (``bbox_AP`` ... ``bbox_ARl`` as fractions in [0, 1]), ``--results`` the COCO results.
* ``predict INPUT... --weights FILE [--score-thr 0.05]``: the shared predict flags
  (:func:`hrnet.cli_common.add_predict_verb`); pictures with the boxes (and masks) drawn and
  ``RUN/results.json`` with every image's detections as COCO results in the dataset's category ids.
* ``track INPUT... [predict flags] [--classes person ...] [--track-thr 0.5] [--keep-alive F] [--csv]
  [--eval GT.txt]``: predict with persistent IDs, smoothed boxes and ``RUN/<video>.mot.txt``; see
  docs/video.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from hrnet.cli_common import (
    add_eval_verb,
    add_predict_verb,
    add_track_verb,
    add_train_verb,
    config_over_card,
    emit_json,
    run_predict,
    track_setup,
    train_out,
    weights_entry,
)
from hrnet.detection.api import TRACK_THR, Detector
from hrnet.detection.check import add_check_data
from hrnet.detection.config import DetConfig
from hrnet.detection.model import build_model
from hrnet.detection.train import evaluate, train
from hrnet.engine.config import load_config
from hrnet.engine.distributed import init_distributed, print_main
from hrnet.models.card import ModelCard, read_card
from hrnet.pretrained import command_weights, resolve_weights, zoo_line
from hrnet.track.session import VideoTracker

STAT_PREFIXES = ("bbox", "segm", "kpt")


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """Add the ``train``, ``eval``, ``predict`` and ``check-data`` verbs to ``hrnet det``."""
    sub = parser.add_subparsers(dest="verb", required=True)

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
        help="boxes, classes and masks in images, folders, globs, videos, webcams and streams",
        func=cmd_predict,
        example="test.score_thresh=0.3",
    )
    _add_det_flags(p)
    p = add_track_verb(
        sub,
        task="det",
        help="detections with persistent IDs and smoothed boxes over videos, streams and image sequences",
        func=cmd_track,
        example="test.score_thresh=0.3",
    )
    p.add_argument("--classes", nargs="+", default=None, metavar="NAME", help="track only these classes (default: all)")
    p.add_argument(
        "--track-thr",
        type=float,
        default=TRACK_THR,
        help="detections scored at least this start and continue tracks (default %(default)s)",
    )
    _add_det_flags(p)


def _add_det_flags(p: argparse.ArgumentParser) -> None:
    """The detection flags of ``predict`` and ``track``."""
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
    p.add_argument(
        "--bgr",
        action="store_true",
        help="feed BGR, for your own BGR-trained weights without a card (official and mmdet R-CNN files take RGB)",
    )
    p.add_argument("--draw-thr", type=float, default=0.3, help="draw detections scored at least this")
    p.add_argument("--alpha", type=float, default=0.5, help="mask overlay opacity")
    p.add_argument("--no-masks", action="store_true", help="draw boxes only")


def _config(args: argparse.Namespace) -> DetConfig:
    return load_config(DetConfig, args.config, args.overrides)


def cmd_train(args: argparse.Namespace) -> int:
    """``hrnet det train``: the run folder rule is :data:`hrnet.cli_common.TRAIN_OUT_RULE`."""
    metrics = train(_config(args), train_out(args), resume=args.resume, device=args.device, exist_ok=args.exist_ok)
    if metrics:
        print_main(json.dumps(metrics, indent=2))
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
    cfg = _config(args)
    dist = init_distributed(args.device)
    metrics = evaluate(
        cfg, resolve_weights(args.weights), results_file=args.results, dist=dist, per_class=args.per_class
    )
    if dist.is_main:
        if args.json != "-":
            print_metrics(metrics)
        emit_json(metrics, args.json)
    return 0


# what --set / --config may change on carded detection weights (test settings and the test image size)
PREDICT_TEST_KEYS = ("test.", "data.min_size", "data.max_size")
PREDICT_APPLIED = ("test.score_thresh", "test.nms_thresh", "test.detections_per_img", "data.min_size", "data.max_size")


def _card_settings(args: argparse.Namespace, card: ModelCard) -> dict[str, Any]:
    """What ``--config`` / ``--set`` give on top of carded weights: test settings only (a key that would
    change the network of the carded weights is an error naming it)."""
    if not (args.config or args.overrides):
        return {}
    meta = card.meta
    network: dict[str, tuple[Callable[[DetConfig], Any], Any]] = {
        "model.name": (lambda c: c.model.name, card.model),
        "model.overrides": (lambda c: c.model.overrides, card.overrides),
        "model.options": (lambda c: c.model.options, meta.get("options", {})),
    }
    _, given = config_over_card(
        DetConfig,
        args.config,
        args.overrides,
        weights=args.weights,
        card=card,
        test_keys=PREDICT_TEST_KEYS,
        applied=PREDICT_APPLIED,
        network=network,
        unit="classes",
    )
    return given


def _detector(args: argparse.Namespace) -> tuple[Detector, str]:
    """The :class:`Detector` of the predict flags and its model name: a carded ``--weights`` file needs nothing
    else (``--config`` / ``--set`` change only its test settings); ``--config`` / ``--model`` /
    ``--num-classes`` describe weights without a card."""
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
    card = read_card(args.weights) if args.weights else None
    if card is not None:
        if card.task != "det":
            raise ValueError(f"{args.weights}: this is a {card.task!r} model ({card.model}), not a 'det' model")
        if args.bgr:
            raise ValueError("--bgr applies to --model NAME with weights without a card (a card says it itself)")
        given = _card_settings(args, card)
        if given.get("data.min_size"):
            given["data.min_size"] = given["data.min_size"][-1]  # the last entry is the test size
        for flag, key in (
            ("score_thr", "test.score_thresh"),
            ("nms_thr", "test.nms_thresh"),
            ("max_detections", "test.detections_per_img"),
            ("min_size", "data.min_size"),
            ("max_size", "data.max_size"),
        ):
            if opts[flag] is None and key in given:  # the command-line flags win over --set / --config
                opts[flag] = given[key]
        det = Detector(args.model or args.weights, args.weights if args.model else None, **opts)
        return det, card.model
    if args.config or args.overrides:
        cfg = _config(args)
        if args.bgr:
            cfg.model.bgr = True
        n = args.num_classes or 80
        return Detector(build_model(cfg, num_classes=n, pretrained=False), args.weights, **opts), cfg.model.name
    if args.weights is None and args.model is None:
        raise ValueError(
            "det predict needs --weights (a weights file with a model card is enough), "
            "or --model NAME for random weights"
        )
    if args.model is None:
        if args.bgr:
            raise ValueError("--bgr applies to --model NAME with weights without a card (a card says it itself)")
        det = Detector(args.weights, **opts)
        return det, det.card.model if det.card else str(args.weights)
    return Detector(args.model, args.weights, **opts, **({"bgr": True} if args.bgr else {})), args.model


def cmd_predict(args: argparse.Namespace) -> int:
    """``hrnet det predict``: see :func:`hrnet.cli_common.run_predict` for the outputs. With no weights flag
    the zoo's default COCO detector runs and names itself on stderr (entry, metric, licence) and in
    ``results.json``."""
    given, args.weights = command_weights(
        "det", args.weights, model=args.model, config=args.config, overrides=args.overrides
    )
    det, model = _detector(args)
    return _run(args, det, given, model)


def cmd_track(args: argparse.Namespace) -> int:
    """``hrnet det track``: ``predict`` with a :class:`hrnet.track.session.VideoTracker` over the frames and
    the track files (docs/video.md)."""
    options, writers = track_setup(args, min_score=args.track_thr)
    given, args.weights = command_weights(
        "det", args.weights, model=args.model, config=args.config, overrides=args.overrides
    )
    det, model = _detector(args)
    if args.classes:
        det.labels_of(args.classes)  # an unknown class name stops here, before any run folder
    return _run(args, det, given, model, tracker=VideoTracker(options), writers=writers)


def _run(
    args: argparse.Namespace,
    det: Detector,
    given: Any,
    model: str,
    *,
    tracker: VideoTracker | None = None,
    writers: Any = None,
) -> int:
    """The predict loop of ``predict`` and ``track``."""
    line = zoo_line(det.weights_info)
    if line:
        print(line, file=sys.stderr)

    def predict(frames):  # noqa: ANN001, ANN202 - list[Frame] -> list[DetResult]
        if tracker is not None:
            return det.track_frames(frames, tracker, args.classes)
        return det.predict_frames(frames)

    info = {
        "model": model,
        "weights": weights_entry(det, given, model),
        "weights_info": det.weights_info,
        "classes": det.class_names,
        "category_ids": det.category_ids,
        "runtime": det.runtime,
        **det.test,
    }
    if tracker is not None:
        info["tracking"] = {**asdict(tracker.options), "classes": args.classes}
    plot_options = {"score_thr": args.draw_thr, "alpha": args.alpha, "show_masks": not args.no_masks}
    return run_predict(args, task="det", predict=predict, info=info, plot_options=plot_options, writers=writers)
