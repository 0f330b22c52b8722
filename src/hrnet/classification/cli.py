"""``hrnet cls train | eval | predict | check-data``: the command line of the classification task.

* ``train --config YAML [--set key=value ...] --out DIR [--resume CKPT]``: the paper's recipe through the
  shared engine; works under ``torchrun`` (DDP; the LR scales with the global batch).
* ``eval [--config YAML | --model NAME] --weights FILE [--data DIR_OR_LIST] [--json [OUT]]``: prints top-1
  and top-5 accuracy; ``--json`` writes ``top1`` and ``top5`` as fractions in [0, 1] (0.77 = 77 %),
  plus ``count`` (images scored) and ``skipped`` (unreadable images).
* ``predict INPUT... --weights FILE [--topk 5]``: the shared predict flags
  (:func:`hrnet.cli_common.add_predict_verb`); prints the top classes of each image, writes pictures with
  them and ``RUN/results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from hrnet.classification.api import Classifier
from hrnet.classification.check import add_check_data
from hrnet.classification.config import ClsConfig
from hrnet.classification.model import HUB
from hrnet.classification.train import evaluate, train
from hrnet.cli_common import (
    add_json_option,
    add_predict_verb,
    add_run_options,
    add_train_verb,
    config_over_card,
    emit_json,
    run_predict,
    train_out,
)
from hrnet.engine.config import load_config
from hrnet.engine.distributed import init_distributed, print_main
from hrnet.models.card import ModelCard, read_card
from hrnet.pretrained import command_weights, resolve_weights, zoo_line
from hrnet.results import RANDOM_WEIGHTS


def _add_model(p: argparse.ArgumentParser, with_config: bool = True) -> None:
    if with_config:
        p.add_argument("--config", default=None, help="experiment YAML (model, classes, crop sizes)")
        p.add_argument("--model", default=None, help="model name for weights without a card, e.g. hrnet_w18")
    p.add_argument(
        "--num-classes", type=int, default=None, help="class count for weights without a card (must match the file)"
    )
    p.add_argument("--classes", default=None, help="class-name file (name or id<TAB>name per line)")


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """Add the ``train``, ``eval`` and ``predict`` verbs to ``hrnet cls``."""
    sub = parser.add_subparsers(dest="verb", required=True)

    add_check_data(sub)

    example = "train.optim.lr=0.05 data.train=/data/imagenet/train"
    add_train_verb(
        sub,
        help="train a classifier from a config (ImageFolder or list-file data)",
        example_config="configs/cls/imagenet/hrnet_w18.yaml",
        default_out="runs/cls",
        func=cmd_train,
        example=example,
    )

    p = sub.add_parser("eval", help="top-1 / top-5 accuracy on a validation folder or list file")
    _add_model(p)
    p.add_argument("--weights", default=None, help="weights file (ours, official HRNet, timm); 'hub' = official")
    p.add_argument("--data", default=None, help="ImageFolder root or list file (default: data.val of the config)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--workers", type=int, default=None)
    add_json_option(p, "top1/top5 (fractions in [0, 1])")
    add_run_options(p, example)
    p.set_defaults(func=cmd_eval)

    p = add_predict_verb(
        sub,
        task="cls",
        help="top classes and probabilities of images and videos",
        func=cmd_predict,
        example="data.crop_size=256",
    )
    _add_model(p, with_config=False)
    p.add_argument("--topk", type=int, default=5, help="classes to report per image (default %(default)s)")


def _config(args: argparse.Namespace) -> ClsConfig:
    return load_config(ClsConfig, getattr(args, "config", None), args.overrides)


def _classifier(args: argparse.Namespace, device: str | None = None, batch_size: int | None = None):
    """A :class:`Classifier` from ``--weights`` (a carded file is enough), ``--config`` / ``--model``, and the
    config. A class count that differs from the weights' is an error, never a re-initialised classifier."""
    if args.model is not None and args.config is not None:
        raise ValueError("give --model or --config, not both")
    cfg = _config(args)
    from_config = args.config is not None or any(o.startswith("model.") for o in args.overrides)
    weights = args.weights or cfg.test.weights or (cfg.model.pretrained if from_config else None)
    kwargs = dict(
        num_classes=args.num_classes,
        class_names=args.classes or cfg.data.classes,
        topk=getattr(args, "topk", 5),
        device=device or args.device,
        batch_size=batch_size or 32,
        runtime=getattr(args, "runtime", "eager"),
    )
    if from_config:
        kwargs.update(
            num_classes=args.num_classes or cfg.model.num_classes,
            crop_size=cfg.data.crop_size,
            resize_size=cfg.data.resize_size,
            interpolation=cfg.data.interpolation,
            head=cfg.model.head,
            **cfg.model.overrides(),
        )
        return Classifier(cfg.model.name, weights, **kwargs), cfg
    if weights is None and args.model is None:
        raise ValueError("give --weights (a weights file with a model card is enough), --model or --config")
    if args.model is None:
        return Classifier(weights, **kwargs), cfg
    return Classifier(args.model, weights, **kwargs), cfg


def cmd_train(args: argparse.Namespace) -> int:
    """``hrnet cls train``: the run folder rule is :data:`hrnet.cli_common.TRAIN_OUT_RULE`."""
    metrics = train(_config(args), train_out(args), resume=args.resume, device=args.device, exist_ok=args.exist_ok)
    if metrics:
        print_main(json.dumps(metrics))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """``hrnet cls eval``: the network of the flags (:func:`_classifier`) scored by :func:`evaluate`, the
    evaluation of the Python API."""
    dist = init_distributed(args.device)
    if args.weights is not None and args.weights != HUB:
        args.weights = str(resolve_weights(args.weights))  # a zoo name, URL or hub name: its local file
    clf, cfg = _classifier(args, device=str(dist.device))
    data = args.data or cfg.data.val
    metrics = evaluate(
        cfg,
        args.weights,
        dist=dist,
        data=data,
        classifier=clf,
        batch_size=args.batch_size,
        workers=args.workers,
    )
    if dist.is_main:
        skipped = f", {int(metrics['skipped'])} unreadable images skipped" if metrics["skipped"] else ""
        if args.json != "-":
            print(
                f"top-1 {100 * metrics['top1']:.2f}%  top-5 {100 * metrics['top5']:.2f}%  "
                f"({int(metrics['count'])} images{skipped})"
            )
        emit_json(
            {
                **metrics,
                "count": int(metrics["count"]),
                "skipped": int(metrics["skipped"]),
                "model": clf.card.model if clf.card else (args.model or cfg.model.name),
                "weights": str(args.weights or ""),
                "data": str(data),
            },
            args.json,
        )
    return 0


# what --set / --config may change on carded classification weights, and what predict applies of it
PREDICT_TEST_KEYS = ("test.", "data.crop_size", "data.resize_size", "data.interpolation")
PREDICT_APPLIED = ("data.crop_size", "data.resize_size", "data.interpolation")
BACKBONE_KEYS = ("width", "stem_width", "stage1_channels", "stage1_blocks", "stage_modules", "stage_blocks")


def _carded_classifier(args: argparse.Namespace, card: ModelCard) -> Classifier:
    """The classifier of carded ``--weights``: the card fixes the network, ``--config`` / ``--set`` change only
    the evaluation transform (crop, resize, interpolation); a key that would change the network is an error."""
    if card.task != "cls":
        raise ValueError(f"{args.weights}: this is a {card.task!r} model ({card.model}), not a 'cls' model")
    given: dict[str, Any] = {}
    if args.config or args.overrides:
        network: dict[str, tuple[Callable[[ClsConfig], Any], Any]] = {
            "model.name": (lambda c: c.model.name, card.model),
            "model.num_classes": (lambda c: c.model.num_classes, card.num_outputs),
            "model.head": (lambda c: c.model.head, card.overrides.get("head", "c")),
        }
        for key in BACKBONE_KEYS:
            network[f"model.{key}"] = (lambda c, k=key: getattr(c.model, k), card.overrides.get(key))
        _, given = config_over_card(
            ClsConfig,
            args.config,
            args.overrides,
            weights=args.weights,
            card=card,
            test_keys=PREDICT_TEST_KEYS,
            applied=PREDICT_APPLIED,
            network=network,
            unit="classes",
        )
    return Classifier(
        args.model or args.weights,
        args.weights if args.model else None,
        num_classes=args.num_classes,
        class_names=args.classes,
        topk=args.topk,
        crop_size=given.get("data.crop_size"),
        resize_size=given.get("data.resize_size"),
        interpolation=given.get("data.interpolation"),
        batch_size=args.batch_size,
        device=args.device,
        runtime=args.runtime,
    )


def cmd_predict(args: argparse.Namespace) -> int:
    """``hrnet cls predict``: see :func:`hrnet.cli_common.run_predict` for the outputs."""
    if args.topk < 1:
        raise ValueError(f"--topk must be >= 1, got {args.topk}")
    given = args.weights
    if args.weights != HUB:
        given, args.weights = command_weights(
            "cls", args.weights, model=args.model, config=args.config, overrides=args.overrides
        )
    card = read_card(args.weights) if args.weights and args.weights != HUB else None
    if card is not None:
        clf, name = _carded_classifier(args, card), card.model
    else:
        clf, cfg = _classifier(args, batch_size=args.batch_size)
        name = clf.card.model if clf.card else (args.model or cfg.model.name)

    line = zoo_line(clf.weights_info)
    if line:
        print(line, file=sys.stderr)

    def predict(frames):  # noqa: ANN001, ANN202 - list[Frame] -> list[ClsResult]
        results = clf.predict_frames(frames)
        if args.json != "-":
            for f, r in zip(frames, results):
                best = ", ".join(f"{s.name} {s.prob:.3f}" for s in r.top[:3])
                print(f"{f.name}: {best}", file=sys.stderr)
        return results

    info = {
        "model": name,
        "weights": RANDOM_WEIGHTS if clf.random_weights else str(given or ""),
        "weights_info": clf.weights_info,
        "topk": args.topk,
        "num_classes": clf.num_classes,
        "crop_size": clf.crop_size,
        "resize_size": clf.resize_size,
    }
    return run_predict(args, task="cls", predict=predict, info=info)
