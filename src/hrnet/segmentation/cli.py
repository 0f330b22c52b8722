"""``hrnet seg train | eval | predict | check-data``: the command line of the segmentation task.

* ``train --config YAML [--set key=value ...] --out DIR [--resume CKPT]``: runs the engine; works under
  ``torchrun`` (DDP, SyncBN via ``train.sync_bn``).
* ``eval --config YAML --weights FILE [--json [OUT]] [--protocol ... --scales 0.5 1 1.5 --flip]``: prints
  mIoU, pixel accuracy, mean accuracy and per-class IoU; ``--json`` writes them (``per_class`` maps class
  name -> IoU, ``null`` for classes absent from both prediction and ground truth).
* ``predict INPUT... --weights FILE``: the shared predict flags (:func:`hrnet.cli_common.add_predict_verb`);
  per image the colour overlay (same name as the input) and ``<name>.labels.png`` (palette PNG holding
  class indices), and ``RUN/results.json`` with the pixel count of every class present.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from typing import Any

from hrnet.cli_common import (
    add_eval_verb,
    add_predict_verb,
    add_train_verb,
    config_over_card,
    emit_json,
    run_predict,
    train_out,
    weights_entry,
)
from hrnet.engine.config import load_config
from hrnet.engine.distributed import init_distributed, print_main
from hrnet.models.card import ModelCard, read_card
from hrnet.pretrained import command_weights, resolve_weights, zoo_line
from hrnet.segmentation.api import Segmenter
from hrnet.segmentation.check import add_check_data
from hrnet.segmentation.config import TEST_MODES, TEST_PROTOCOLS, SegConfig, SegTestConfig
from hrnet.segmentation.inference import DEFAULT_MAX_PIXELS
from hrnet.segmentation.model import build_model, card_test_config
from hrnet.segmentation.train import class_info, evaluate, train


def _add_inference(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--protocol",
        choices=TEST_PROTOCOLS,
        default=None,
        help="test protocol (default: the config's / the weights' card)",
    )
    p.add_argument("--mode", choices=TEST_MODES, default=None, help="whole image or sliding windows")
    p.add_argument("--crop-size", nargs=2, type=int, metavar=("H", "W"), help="sliding-window size")
    p.add_argument("--base-size", type=int, default=None, help="long side at scale 1.0 (0 = the image's own)")
    p.add_argument("--scales", nargs="+", type=float, help="test scales, e.g. 0.5 0.75 1 1.25 1.5 1.75")
    p.add_argument("--flip", action="store_true", default=None, help="average with the mirrored image")


def _test_options(args: argparse.Namespace) -> dict:
    """The test-protocol flags that were given, as SegTestConfig fields."""
    opts = {
        "protocol": args.protocol,
        "mode": args.mode,
        "base_size": args.base_size,
        "crop_size": list(args.crop_size) if args.crop_size else None,
        "scales": list(args.scales) if args.scales else None,
        "flip": args.flip,
        "resize_to": list(args.input_size) if getattr(args, "input_size", None) else None,
    }
    return {k: v for k, v in opts.items() if v is not None}


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """Add the ``train``, ``eval`` and ``predict`` verbs to ``hrnet seg``."""
    sub = parser.add_subparsers(dest="verb", required=True)

    add_check_data(sub)

    example = "train.optim.lr=0.005 data.root=/data/cityscapes"
    add_train_verb(
        sub,
        help="train a segmentation model from a config",
        example_config="configs/seg/cityscapes/w48.yaml",
        default_out="runs/seg",
        func=cmd_train,
        example=example,
    )

    p = add_eval_verb(
        sub,
        help="mIoU, pixel and mean accuracy, per-class IoU on the validation split",
        weights_help="weights (ours, official HRNet or mmseg checkpoints)",
        json_what="the scores",
        func=cmd_eval,
        example=example,
    )
    p.add_argument("--split", default=None, help="split to evaluate (default: data.val_split)")
    _add_inference(p)

    p = add_predict_verb(
        sub,
        task="seg",
        help="label maps and colour overlays for images and videos",
        func=cmd_predict,
        example="test.flip=true",
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="class preset for weights without a card: cityscapes, lip, pascal_context59, pascal_context60",
    )
    p.add_argument("--num-classes", type=int, default=None, help="class count for weights without a card")
    p.add_argument(
        "--input-size",
        nargs=2,
        type=int,
        default=None,
        metavar=("H", "W"),
        help="resize every image to H W first (test.resize_to; the labels come back at full size)",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help="largest image segmented as it is (default %(default)s, 8.4 MP); a larger one is downscaled to N "
        "pixels for the network and its labels upsampled back to full size, which bounds the memory",
    )
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")
    p.add_argument("--no-legend", action="store_true")
    _add_inference(p)


def _load(args: argparse.Namespace):
    """The config of ``--config`` / ``--set`` with the test-protocol flags applied."""
    cfg = load_config(SegConfig, args.config, args.overrides)
    cfg.test = dataclasses.replace(cfg.test, **_test_options(args)) if hasattr(args, "protocol") else cfg.test
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    """``hrnet seg train``: the run folder rule is :data:`hrnet.cli_common.TRAIN_OUT_RULE`."""
    cfg = _load(args)
    metrics = train(cfg, train_out(args), resume=args.resume, device=args.device, exist_ok=args.exist_ok)
    if metrics:
        print_main(json.dumps(metrics, indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """``hrnet seg eval``."""
    cfg = _load(args)
    dist = init_distributed(args.device)
    scores = evaluate(cfg, resolve_weights(args.weights), split=args.split, dist=dist)
    if dist.is_main:
        if args.json != "-":
            print(
                f"mIoU {scores['mIoU'] * 100:.2f}  pixel_acc {scores['pixel_acc'] * 100:.2f}  "
                f"mean_acc {scores['mean_acc'] * 100:.2f}  (protocol {cfg.test.protocol})"
            )
            for name, iou in scores["per_class"].items():
                print(f"  {name:<16} {'-' if iou is None else f'{iou * 100:.2f}'}")
        emit_json(scores, args.json)
    return 0


# the test settings a seg predict applies from --config / --set on top of carded weights (test.* only)
PREDICT_APPLIED = tuple(
    f"test.{k}" for k in ("protocol", "base_size", "mode", "crop_size", "stride", "scales", "flip", "resize_to")
)


def _card_test(args: argparse.Namespace, card: ModelCard) -> SegTestConfig:
    """The card's test protocol with what ``--config`` / ``--set`` give on top (test.* only: a key that would
    change the network of the carded weights is an error naming it)."""
    test = card_test_config(card)
    if not (args.config or args.overrides):
        return test
    network: dict[str, tuple[Callable[[SegConfig], Any], Any]] = {
        "model.name": (lambda c: c.model.name, card.model),
        "model.stage_modules": (lambda c: c.model.stage_modules, card.overrides.get("stage_modules")),
        "model.stage_blocks": (lambda c: c.model.stage_blocks, card.overrides.get("stage_blocks")),
        "data.num_classes": (lambda c: c.data.num_classes, card.num_outputs),
    }
    _, given = config_over_card(
        SegConfig,
        args.config,
        args.overrides,
        weights=args.weights,
        card=card,
        applied=PREDICT_APPLIED,
        network=network,
        unit="classes",
    )
    return dataclasses.replace(test, **{k.split(".", 1)[1]: v for k, v in given.items()})


def _segmenter(args: argparse.Namespace) -> tuple[Segmenter, str]:
    """The :class:`Segmenter` of the predict flags and its model name: a carded ``--weights`` file needs
    nothing else (``--config`` / ``--set`` change only its test settings); for weights without a card (or
    ``--model`` alone: random weights) the config describes the network."""
    opts = _test_options(args)
    card = read_card(args.weights) if args.weights else None
    if card is not None:
        if card.task != "seg":
            raise ValueError(f"{args.weights}: this is a {card.task!r} model ({card.model}), not a 'seg' model")
        seg = Segmenter(
            args.model or args.weights,
            args.weights if args.model else None,
            num_classes=args.num_classes,
            dataset=args.dataset,
            test=_card_test(args, card),
            device=args.device,
            runtime=args.runtime,
            **opts,
        )
        return seg, card.model
    if args.config or args.overrides:
        cfg = _load(args)
        cfg.model.pretrained = None
        names, palette, pairs = class_info(cfg.data)
        seg = Segmenter(
            build_model(cfg),
            args.weights,
            class_names=names,
            palette=palette,
            flip_pairs=pairs,
            test=cfg.test,
            mean=cfg.data.mean,
            std=cfg.data.std,
            device=args.device,
            runtime=args.runtime,
        )
        return seg, cfg.model.name
    if args.weights is None and args.model is None:
        raise ValueError(
            "seg predict needs --weights (a weights file with a model card is enough), "
            "or --model NAME for random weights"
        )
    source = args.model if args.model is not None else args.weights
    weights = args.weights if args.model is not None else None
    seg = Segmenter(
        source,
        weights,
        num_classes=args.num_classes,
        dataset=args.dataset,
        device=args.device,
        runtime=args.runtime,
        **opts,
    )
    return seg, seg.card.model if seg.card else str(source)


def cmd_predict(args: argparse.Namespace) -> int:
    """``hrnet seg predict``: see :func:`hrnet.cli_common.run_predict` for the outputs. With no weights flag
    the zoo's default (the official Cityscapes model, official protocol) runs and names itself on stderr
    (entry, metric, licence) and in ``results.json``."""
    given, args.weights = command_weights(
        "seg", args.weights, model=args.model, config=args.config, overrides=args.overrides
    )
    seg, model = _segmenter(args)
    line = zoo_line(seg.weights_info)
    if line:
        print(line, file=sys.stderr)
    if args.max_pixels < 1:
        raise ValueError(f"--max-pixels must be >= 1, got {args.max_pixels}")
    seg.max_pixels = args.max_pixels

    def predict(frames):  # noqa: ANN001, ANN202 - list[Frame] -> list[SegResult]
        return seg.predict_frames(frames)

    info = {
        "model": model,
        "weights": weights_entry(seg, given, model),
        "weights_info": seg.weights_info,
        "classes": seg.class_names,
        "protocol": seg.test.protocol,
        "scales": list(seg.test.scales),
        "flip": seg.test.flip,
    }
    plot_options = {"alpha": args.alpha, "legend": not args.no_legend}
    return run_predict(args, task="seg", predict=predict, info=info, plot_options=plot_options)
