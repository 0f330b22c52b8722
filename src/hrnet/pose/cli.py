"""``hrnet pose train | eval | predict``: the command line of the pose task.

* ``train --config YAML [--set key=value ...] [--resume CKPT] [--out DIR]``: works under ``torchrun``.
* ``eval --config YAML --weights W [--json [OUT]] [--results FILE]``: prints AP / AP50 / AP75 / APM / APL / AR
  (PCKh for MPII); ``--json`` writes the metric dict, ``--results`` the COCO-format predictions.
* ``predict INPUT... --weights W [--boxes FILE | --detector FILE]``: the shared predict flags
  (:func:`hrnet.cli_common.add_predict_verb`); pictures with skeletons (videos as videos) and
  ``RUN/results.json`` with the people of each image as COCO results. Without boxes and without a
  detector, each whole image is one person, and the output says so.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging

import numpy as np

from hrnet.cli_common import (
    add_eval_verb,
    add_predict_verb,
    add_train_verb,
    emit_json,
    run_predict,
    setup_logging,
)
from hrnet.pose.boxes import BOXES_HELP, boxes_for, load_boxes_file

BOXES_EPILOG = BOXES_HELP


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """Add the ``train``, ``eval`` and ``predict`` verbs to ``hrnet pose``."""
    sub = parser.add_subparsers(dest="verb", required=True)
    from hrnet.pose.check import add_check_data  # the data check verb lives with the check

    add_check_data(sub)

    example = "train.optim.lr=5e-4 data.root=/data/coco"
    add_train_verb(
        sub,
        help="train a pose model from a config (torchrun for several processes)",
        example_config="configs/pose/coco/w32_256x192.yaml",
        default_out="runs/pose",
        func=cmd_train,
        example=example,
    )

    p = add_eval_verb(
        sub,
        help="COCO AP/AR (or MPII PCKh) of weights on the validation set",
        weights_help="pose weights (ours, official HRNet or mmpose checkpoints)",
        json_what="the metric dict",
        func=cmd_eval,
        example=example,
    )
    p.add_argument("--results", default=None, metavar="FILE", help="write the COCO-format keypoint results")

    p = add_predict_verb(
        sub,
        task="pose",
        help="poses in images, folders, globs and videos",
        func=cmd_predict,
        example="test.flip_test=false",
        epilog=BOXES_EPILOG,
    )
    p.add_argument("--keypoint-set", default=None, help="built-in set or YAML, for weights without a model card")
    p.add_argument(
        "--input-size",
        nargs=2,
        type=int,
        default=None,
        metavar=("H", "W"),
        help="crop size (default: the weights' card, the config, else 256 192)",
    )
    p.add_argument("--boxes", default=None, help="person boxes file (formats below)")
    p.add_argument(
        "--detector",
        "--detector-weights",
        dest="detector_weights",
        default=None,
        help="person detector weights: our carded detection weights (hrnet det train), or a "
        "torchvision detector's (see --det-arch)",
    )
    p.add_argument("--det-thr", type=float, default=0.5, help="detector score threshold")
    p.add_argument(
        "--det-arch",
        default="fasterrcnn_resnet50_fpn",
        help="torchvision detection architecture the detector weights belong to",
    )
    p.add_argument("--kpt-thr", type=float, default=0.3, help="draw keypoints scored above this")
    p.add_argument("--no-flip", action="store_true", help="no flip test (faster)")
    p.add_argument("--dark", action="store_true", default=None, help="DARK sub-pixel decoding")


def cmd_train(args: argparse.Namespace) -> int:
    from hrnet.engine.config import load_config
    from hrnet.pose.config import PoseConfig
    from hrnet.pose.train import train

    setup_logging()
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
    from hrnet.pose.config import PoseConfig
    from hrnet.pose.train import evaluate

    setup_logging()
    cfg = load_config(PoseConfig, args.config, args.overrides)
    dist = init_distributed(args.device)
    metrics = evaluate(cfg, args.weights, results_file=args.results, dist=dist)
    if dist.is_main:
        if args.json != "-":
            print_metrics(metrics)
        emit_json(metrics, args.json)
    return 0


def _estimator(args: argparse.Namespace):
    """The :class:`PoseEstimator` of the predict flags: a carded ``--weights`` file needs nothing else;
    ``--config`` / ``--model`` / ``--keypoint-set`` / ``--input-size`` describe weights without a card."""
    from hrnet.pose.api import PoseEstimator

    cfg = None
    if args.config or args.overrides:
        from hrnet.engine.config import load_config
        from hrnet.pose.config import PoseConfig

        cfg = load_config(PoseConfig, args.config, args.overrides)
    if args.keypoint_set is not None or cfg is None:
        keypoint_set = args.keypoint_set
    else:
        from hrnet.pose.config import resolve_keypoint_set

        keypoint_set = resolve_keypoint_set(cfg.data)
    size = args.input_size or (list(reversed(cfg.data.input_size)) if cfg else None)
    flip = False if args.no_flip else (cfg.test.flip_test if cfg else None)
    dark = args.dark if args.dark is not None else (cfg.test.dark if cfg else None)
    name = args.model or (cfg.model.name if cfg else None)
    if args.weights is None and name is None:
        raise ValueError(
            "pose predict needs --weights (a weights file with a model card is enough), "
            "or --model NAME for random weights"
        )
    source = name if name is not None else args.weights
    weights = args.weights if name is not None else None
    if cfg is not None and name == cfg.model.name:  # the config's network, with its backbone overrides
        from hrnet.pose.keypoints import load_keypoint_set
        from hrnet.pose.model import build_model

        source = build_model(cfg, load_keypoint_set(keypoint_set) if keypoint_set else None, pretrained=False)
    return PoseEstimator(
        source,
        weights,
        keypoint_set=keypoint_set,
        input_size=size,
        flip_test=flip,
        dark=dark,
        shift_heatmap=cfg.test.shift_heatmap if cfg else None,
        batch_size=max(args.batch_size, 1),
        device=args.device,
        runtime=args.runtime,
    )


def cmd_predict(args: argparse.Namespace) -> int:
    """``hrnet pose predict``: see :func:`hrnet.cli_common.run_predict` for the outputs."""
    setup_logging()
    log = logging.getLogger("hrnet.pose")
    estimator = _estimator(args)
    table = load_boxes_file(args.boxes) if args.boxes else None
    detector = None
    if table is None and args.detector_weights:
        from hrnet.pose.detector import PersonDetector

        detector = PersonDetector(
            args.detector_weights, score_thr=args.det_thr, arch=args.det_arch, device=str(estimator.device)
        )
    notes = []
    if table is None and detector is None:
        notes.append("no --boxes and no detector: each whole image is treated as one person")

    def predict(frames):  # noqa: ANN001, ANN202 - list[Frame] -> list[PoseResult]
        boxes = None
        if table is not None:
            boxes = []
            for f in frames:
                found = boxes_for(table, f.source.path) if f.source is not None else None
                if found is None:
                    log.warning("%s: no boxes in %s: no people", f.name, args.boxes)
                boxes.append(np.zeros((0, 5)) if found is None else found)
        results = estimator.predict_frames(frames, boxes, detector=detector, skip_bad=args.skip_bad)
        for r in results:
            r.plot = functools.partial(r.plot, kpt_thr=args.kpt_thr)
        return results

    info = {
        "model": estimator.card.model if estimator.card else (args.model or ""),
        "weights": args.weights,
        "keypoint_set": estimator.keypoint_set.name,
        "flip_test": estimator.flip_test,
        "dark": estimator.dark,
        "input_size": list(estimator.input_size),
        "runtime": args.runtime,
        "boxes": args.boxes or ("detector" if detector is not None else "whole image"),
    }
    return run_predict(args, task="pose", predict=predict, info=info, notes=notes)
