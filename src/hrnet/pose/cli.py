"""``hrnet pose train | eval | predict``: the command line of the pose task.

* ``train --config YAML [--set key=value ...] [--resume CKPT] [--out DIR]``: works under ``torchrun``.
* ``eval --config YAML --weights W [--json [OUT]] [--results FILE]``: prints AP / AP50 / AP75 / APM / APL / AR
  (PCKh for MPII); ``--json`` writes the metric dict, ``--results`` the COCO-format predictions.
* ``predict INPUT... [--weights W] [--boxes FILE | --detector NAME|FILE|none]``: the shared predict flags
  (:func:`hrnet.cli_common.add_predict_verb`); pictures with skeletons (videos as videos) and
  ``RUN/results.json`` with the people of each image as COCO results. With no flags at all it runs the
  zoo's default COCO model on every person the zoo's default person detector finds (both downloaded and
  verified once); ``--detector none`` treats each whole image as one person, and the output says so.
* ``track INPUT... [predict flags] [--keep-alive F] [--det-every N] [--smooth one-euro|ema|none] [--csv]
  [--eval GT.txt]``: predict with persistent person IDs, smoothed keypoints, ``RUN/<video>.mot.txt``
  (and ``.tracks.csv``); see docs/video.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

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
from hrnet.engine.config import load_config
from hrnet.engine.distributed import init_distributed, print_main
from hrnet.inputs import expand_inputs
from hrnet.models.card import ModelCard, read_card
from hrnet.pose.api import PoseEstimator
from hrnet.pose.boxes import BOXES_HELP, DEFAULT_SCORE_THR, boxes_for, drop_low_scores, load_boxes_file
from hrnet.pose.check import add_check_data
from hrnet.pose.config import PoseConfig, resolve_keypoint_set
from hrnet.pose.detector import DEFAULT_DETECTOR, NO_DETECTOR, PersonDetector, detector_info
from hrnet.pose.face_detector import FACE_DETECTOR, FaceDetector, is_face_keypoint_set
from hrnet.pose.keypoints import KeypointSet, load_keypoint_set
from hrnet.pose.model import build_model, card_keypoint_set
from hrnet.pose.train import evaluate, train
from hrnet.pretrained import command_weights, resolve_weights, task_default, zoo_line
from hrnet.track.session import VideoTracker

BOXES_EPILOG = BOXES_HELP


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """Add the ``train``, ``eval`` and ``predict`` verbs to ``hrnet pose``."""
    sub = parser.add_subparsers(dest="verb", required=True)

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
        help="poses in images, folders, globs, videos, webcams and streams",
        func=cmd_predict,
        example="test.flip_test=false",
        epilog=BOXES_EPILOG,
    )
    _add_pose_flags(p)
    p = add_track_verb(
        sub,
        task="pose",
        help="poses with persistent person IDs and smoothed keypoints over videos, streams and image sequences",
        func=cmd_track,
        example="test.flip_test=false",
        epilog=BOXES_EPILOG,
        det_every=True,
    )
    _add_pose_flags(p)


def _add_pose_flags(p: argparse.ArgumentParser) -> None:
    """The pose flags of ``predict`` and ``track``."""
    p.add_argument("--keypoint-set", default=None, help="built-in set or YAML, for weights without a model card")
    p.add_argument(
        "--input-size",
        nargs=2,
        type=int,
        default=None,
        metavar=("H", "W"),
        help="crop size (default: the weights' card, the config, else 256 192)",
    )
    p.add_argument("--boxes", default=None, help="person boxes file (formats below; not with --detector)")
    p.add_argument(
        "--detector",
        "--detector-weights",
        dest="detector_weights",
        default=None,
        metavar="NAME|FILE|none",
        help=f"the person detector run on images without --boxes (not with --boxes): a zoo name (default "
        f"{task_default('person_detector').name}; the light fasterrcnn_mobilenet_v3_large_320_fpn.coco_v1 "
        "for CPUs; an HRNet detector such as faster_rcnn_hrnet_w32.coco; see hrnet list --pretrained --task det), "
        "a file, URL or hf-hub: name (our carded detection weights, or a torchvision detector's: see "
        "--det-arch), 'opencv_face' (OpenCV's face cascade: the default for facial landmark models), or 'none': "
        "each whole image is one person",
    )
    p.add_argument(
        "--det-thr",
        type=float,
        default=None,
        help=f"keep person boxes (of --boxes FILE or of --detector) scored at least this "
        f"(default {DEFAULT_SCORE_THR}; a box without a score counts as 1)",
    )
    p.add_argument(
        "--det-arch",
        default="fasterrcnn_resnet50_fpn",
        help="torchvision detection architecture of --detector weights without a model card (default %(default)s)",
    )
    p.add_argument("--kpt-thr", type=float, default=0.3, help="draw keypoints scored above this")
    p.add_argument("--no-flip", action="store_true", help="no flip test (faster)")
    p.add_argument("--dark", action="store_true", default=None, help="DARK sub-pixel decoding")


def cmd_train(args: argparse.Namespace) -> int:
    """``hrnet pose train``: the run folder rule is :data:`hrnet.cli_common.TRAIN_OUT_RULE`."""
    cfg = load_config(PoseConfig, args.config, args.overrides)
    metrics = train(cfg, train_out(args), resume=args.resume, device=args.device, exist_ok=args.exist_ok)
    if metrics:
        print_main(json.dumps(metrics, indent=2))
    return 0


def print_metrics(metrics: dict[str, float]) -> None:
    """A one-line header + values table (the paper's column order)."""
    keys = list(metrics)
    print(" | ".join(f"{k:>8}" for k in keys))
    print(" | ".join(f"{metrics[k]:8.4f}" for k in keys))


def cmd_eval(args: argparse.Namespace) -> int:
    """``hrnet pose eval``."""
    cfg = load_config(PoseConfig, args.config, args.overrides)
    dist = init_distributed(args.device)
    metrics = evaluate(cfg, resolve_weights(args.weights), results_file=args.results, dist=dist)
    if dist.is_main:
        if args.json != "-":
            print_metrics(metrics)
        emit_json(metrics, args.json)
    return 0


# what ``--set`` / ``--config`` may change on carded pose weights, and what predict applies of it
PREDICT_TEST_KEYS = ("test.", "data.input_size")
PREDICT_APPLIED = ("test.flip_test", "test.shift_heatmap", "test.dark", "data.input_size")


def _keypoint_summary(ks: KeypointSet) -> str:
    return f"{ks.name} ({ks.num_keypoints} keypoints)"


def _card_settings(args: argparse.Namespace, card: ModelCard) -> dict[str, Any]:
    """The test-time settings ``--config`` / ``--set`` give on top of carded weights (the card keeps the
    network: a key that would change it is an error naming it)."""
    if not (args.config or args.overrides):
        return {}
    network: dict[str, tuple[Callable[[PoseConfig], Any], Any]] = {
        "model.name": (lambda c: c.model.name, card.model),
        "model.overrides": (lambda c: c.model.overrides, card.overrides),
        "data.keypoint_set": (
            lambda c: _keypoint_summary(resolve_keypoint_set(c.data)),
            _keypoint_summary(card_keypoint_set(card)),
        ),
    }
    _, given = config_over_card(
        PoseConfig,
        args.config,
        args.overrides,
        weights=args.weights,
        card=card,
        test_keys=PREDICT_TEST_KEYS,
        applied=PREDICT_APPLIED,
        network=network,
        unit="keypoints",
    )
    return given


def _estimator(args: argparse.Namespace) -> tuple[PoseEstimator, str]:
    """The :class:`PoseEstimator` of the predict flags and its model name: a carded ``--weights`` file needs
    nothing else, and ``--config`` / ``--set`` change only its test-time settings; for weights without a card
    (or ``--model`` alone: random weights) ``--config`` / ``--set`` / ``--model`` / ``--keypoint-set`` /
    ``--input-size`` describe the network."""
    card = read_card(args.weights) if args.weights else None
    if card is not None:
        if card.task != "pose":
            raise ValueError(f"{args.weights}: this is a {card.task!r} model ({card.model}), not a 'pose' model")
        given = _card_settings(args, card)
        size = given.get("data.input_size")
        estimator = PoseEstimator(
            args.model or args.weights,
            args.weights if args.model else None,
            keypoint_set=args.keypoint_set,
            input_size=args.input_size or (list(reversed(size)) if size else None),
            flip_test=False if args.no_flip else given.get("test.flip_test"),
            dark=args.dark if args.dark is not None else given.get("test.dark"),
            shift_heatmap=given.get("test.shift_heatmap"),
            detector=None,  # cmd_predict picks the detector
            batch_size=max(args.batch_size, 1),
            device=args.device,
            runtime=args.runtime,
        )
        return estimator, card.model
    cfg = load_config(PoseConfig, args.config, args.overrides) if args.config or args.overrides else None
    if args.keypoint_set is not None or cfg is None:
        keypoint_set = args.keypoint_set
    else:
        keypoint_set = resolve_keypoint_set(cfg.data)
    size = args.input_size or (list(reversed(cfg.data.input_size)) if cfg else None)
    flip = False if args.no_flip else (cfg.test.flip_test if cfg else None)
    dark = args.dark if args.dark is not None else (cfg.test.dark if cfg else None)
    # the config names the network only when it was asked to (a file, or --set model.*), not by its default
    named = cfg is not None and (args.config is not None or any(o.startswith("model.") for o in args.overrides))
    name = args.model or (cfg.model.name if named else None)
    if args.weights is None and name is None:
        raise ValueError(
            "pose predict needs --weights (a weights file with a model card is enough), "
            "or --model NAME for random weights"
        )
    if name is None:
        raise ValueError(
            f"{args.weights}: this weights file has no model card; give --model NAME (or --config) with it"
        )
    source = name
    if cfg is not None and name == cfg.model.name:  # the config's network, with its backbone overrides
        source = build_model(
            cfg, keypoint_set=load_keypoint_set(keypoint_set) if keypoint_set else None, pretrained=False
        )
    estimator = PoseEstimator(
        source,
        args.weights,
        keypoint_set=keypoint_set,
        input_size=size,
        flip_test=flip,
        dark=dark,
        shift_heatmap=cfg.test.shift_heatmap if cfg else None,
        detector=None,  # cmd_predict picks the detector
        batch_size=max(args.batch_size, 1),
        device=args.device,
        runtime=args.runtime,
    )
    return estimator, estimator.card.model if estimator.card else name


def cmd_predict(args: argparse.Namespace) -> int:
    """``hrnet pose predict``: see :func:`hrnet.cli_common.run_predict` for the outputs. With no weights flag
    the zoo's default COCO model runs, and without ``--boxes`` the zoo's default person detector; each names
    itself on stderr (entry, metric, licence) and in ``results.json``."""
    return _predict_or_track(args, track=False)


def cmd_track(args: argparse.Namespace) -> int:
    """``hrnet pose track``: ``predict`` with a :class:`hrnet.track.session.VideoTracker` over the frames,
    and the track files (docs/video.md)."""
    return _predict_or_track(args, track=True)


def _predict_or_track(args: argparse.Namespace, track: bool) -> int:
    log = logging.getLogger("hrnet.pose")
    options, writers = track_setup(args) if track else (None, None)
    if args.boxes and args.detector_weights and args.detector_weights.lower() != NO_DETECTOR:
        raise ValueError(
            "--boxes and --detector both give the person boxes: pass one "
            "(a boxes file, or a detector run on every image)"
        )
    det_thr = DEFAULT_SCORE_THR if args.det_thr is None else args.det_thr
    given, args.weights = command_weights(
        "pose", args.weights, model=args.model, config=args.config, overrides=args.overrides
    )
    estimator, model = _estimator(args)
    notes = []
    table = None
    if args.boxes:
        table, dropped = drop_low_scores(load_boxes_file(args.boxes), det_thr)
        if dropped:
            notes.append(f"--boxes {args.boxes}: {dropped} boxes scored below --det-thr {det_thr:g} left out")
    detector = None
    choice = args.detector_weights or DEFAULT_DETECTOR
    if table is None and choice.lower() != NO_DETECTOR:
        expand_inputs(args.inputs)  # a wrong input is named before a detector is downloaded for it
        if choice.lower() == DEFAULT_DETECTOR:
            face = is_face_keypoint_set(estimator.keypoint_set)
            choice = FACE_DETECTOR if face else task_default("person_detector").name
        if choice.lower() == FACE_DETECTOR:
            detector = FaceDetector(score_thr=det_thr)
        else:
            detector = PersonDetector(choice, score_thr=det_thr, arch=args.det_arch, device=str(estimator.device))
    for line in (zoo_line(estimator.weights_info), zoo_line(detector_info(detector), "detector")):
        if line:
            print(line, file=sys.stderr)
    if table is None and detector is None:
        notes.append("no --boxes and no detector: each whole image is treated as one person")
        if args.det_thr is not None:
            notes.append("--det-thr has no effect without --boxes or --detector")

    tracker = VideoTracker(options, estimator.keypoint_set.sigmas) if options is not None else None

    def predict(frames):  # noqa: ANN001, ANN202 - list[Frame] -> list[PoseResult]
        boxes = None
        if table is not None:
            boxes = []
            for f in frames:
                found = boxes_for(table, f.source.path) if f.source is not None else None
                if found is None:
                    log.warning("%s: no boxes in %s: no people", f.name, args.boxes)
                boxes.append(np.zeros((0, 5)) if found is None else found)
        if tracker is not None:
            return estimator.track_frames(frames, tracker, boxes, detector=detector, skip_bad=args.skip_bad)
        return estimator.predict_frames(frames, boxes, detector=detector, skip_bad=args.skip_bad)

    info = {
        "model": model,
        "weights": weights_entry(estimator, given, model),
        "weights_info": estimator.weights_info,
        "keypoint_set": estimator.keypoint_set.name,
        "flip_test": estimator.flip_test,
        "dark": estimator.dark,
        "input_size": list(estimator.input_size),
        "runtime": args.runtime,
        "boxes": args.boxes or ("detector" if detector is not None else "whole image"),
        "detector": detector_info(detector),
        "det_thr": det_thr if table is not None or detector is not None else None,
    }
    if options is not None:
        info["tracking"] = asdict(options)
        if options.det_every > 1 and detector is None:
            notes.append(f"--det-every {options.det_every} has no effect without a detector")
    plot_options = {"kpt_thr": args.kpt_thr}
    return run_predict(
        args, task="pose", predict=predict, info=info, notes=notes, plot_options=plot_options, writers=writers
    )
