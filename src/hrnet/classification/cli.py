"""``hrnet cls train | eval | predict``: the command line of the classification task.

* ``train --config YAML [--set key=value ...] --out DIR [--resume CKPT]``: the paper's recipe through the
  shared engine; works under ``torchrun`` (DDP; the LR scales with the global batch).
* ``eval (--config YAML | --model NAME) --weights FILE [--data DIR_OR_LIST] [--json OUT]``: prints top-1
  and top-5 accuracy; ``--json`` writes ``top1`` and ``top5`` as fractions in [0, 1] (0.77 = 77 %),
  plus ``count`` (images scored) and ``skipped`` (unreadable images).
* ``predict INPUT... [--model NAME | --config YAML] [--weights FILE] [--topk 5] [--json OUT]``: prints the
  top-5 class names and probabilities of each image.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from hrnet.atomic import write_json
from hrnet.engine.config import add_run_options, add_train_verb


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="experiment YAML (model, classes, crop sizes)")
    p.add_argument("--model", default=None, help="model name without a config, e.g. hrnet_w18 (default)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="class count; differing from the weights' re-initialises the classifier (with a message)")
    p.add_argument("--classes", default=None, help="class-name file (name or id<TAB>name per line)")


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """Add the ``train``, ``eval`` and ``predict`` verbs to ``hrnet cls``."""
    sub = parser.add_subparsers(dest="verb", required=True)

    example = "train.optim.lr=0.05 data.train=/data/imagenet/train"
    add_train_verb(sub, help="train a classifier from a config (ImageFolder or list-file data)",
                   example_config="configs/cls/imagenet/hrnet_w18.yaml", default_out="runs/cls", func=cmd_train,
                   example=example)

    p = sub.add_parser("eval", help="top-1 / top-5 accuracy on a validation folder or list file")
    _add_model(p)
    p.add_argument("--weights", default=None, help="weights file (ours, official HRNet, timm); 'hub' = official")
    p.add_argument("--data", default=None, help="ImageFolder root or list file (default: data.val of the config)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--json", default=None, metavar="OUT", help="write top1/top5 (fractions in [0, 1]) as JSON")
    add_run_options(p, example)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top-5 class names and probabilities of images")
    p.add_argument("inputs", nargs="+", help="image files or folders")
    _add_model(p)
    p.add_argument("--weights", default=None, help="weights file; 'hub' = official (random weights without it)")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--json", default=None, metavar="OUT", help="also write the predictions as JSON")
    add_run_options(p, example)
    p.set_defaults(func=cmd_predict)


def _config(args: argparse.Namespace):
    from hrnet.classification.config import ClsConfig
    from hrnet.engine.config import load_config

    return load_config(ClsConfig, getattr(args, "config", None), args.overrides)


def _write_json(obj: object, path: str | Path) -> None:
    write_json(path, obj)


def _classifier(args: argparse.Namespace, device: str | None = None):
    """A :class:`Classifier` from ``--config`` / ``--model`` and ``--weights``, and the config.

    Class count: ``--num-classes`` (a differing checkpoint re-initialises the classifier, with a message);
    else the config's ``model.num_classes`` (a differing checkpoint is an error); else the checkpoint's.
    """
    from hrnet.classification.api import Classifier

    if args.model is not None and args.config is not None:
        raise ValueError("give --model or --config, not both")
    cfg = _config(args)
    from_config = args.config is not None or any(o.startswith("model.num_classes=") for o in args.overrides)
    if args.num_classes is not None:
        num_classes, reinit = args.num_classes, True
    elif from_config:
        num_classes, reinit = cfg.model.num_classes, False
    else:
        num_classes, reinit = None, False
    weights = args.weights or cfg.test.weights or cfg.model.pretrained
    clf = Classifier(args.model or cfg.model.name, weights=weights, num_classes=num_classes,
                     class_names=args.classes or cfg.data.classes, device=device or args.device,
                     crop_size=cfg.data.crop_size, resize_size=cfg.data.resize_size,
                     interpolation=cfg.data.interpolation, head=cfg.model.head, reinit_classifier=reinit,
                     **cfg.model.overrides())
    if clf.message:
        print(f"hrnet: {clf.message}")
    return clf, cfg


def cmd_train(args: argparse.Namespace) -> int:
    from hrnet.classification.train import train

    metrics = train(_config(args), args.out, resume=args.resume, device=args.device)
    if metrics and int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(metrics))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from hrnet.engine.distributed import init_distributed

    dist = init_distributed(args.device)
    clf, cfg = _classifier(args, device=str(dist.device))
    data = args.data or cfg.data.val
    if not data:
        raise ValueError("no evaluation data: pass --data or set data.val in the config")
    metrics = clf.evaluate(data, batch_size=args.batch_size or cfg.test.batch_size,
                           workers=cfg.test.workers if args.workers is None else args.workers,
                           bad_images=cfg.data.bad_images, rank=dist.rank, world_size=dist.world_size)
    if dist.is_main:
        skipped = f", {int(metrics['skipped'])} unreadable images skipped" if metrics["skipped"] else ""
        print(f"top-1 {100 * metrics['top1']:.2f}%  top-5 {100 * metrics['top5']:.2f}%  "
              f"({int(metrics['count'])} images{skipped})")
        if args.json:
            _write_json({**metrics, "count": int(metrics["count"]), "skipped": int(metrics["skipped"]),
                         "model": args.model or cfg.model.name, "weights": str(args.weights or ""),
                         "data": str(data)}, args.json)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from hrnet.io import IMAGE_SUFFIXES, list_inputs

    if args.topk < 1:
        raise ValueError(f"--topk must be >= 1, got {args.topk}")
    clf, _ = _classifier(args)
    files = [f for f in list_inputs(args.inputs) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ValueError(f"no image files among {args.inputs}")
    results = []
    for path in files:
        scores = clf.predict(path, topk=args.topk)
        print(path)
        for s in scores:
            print(f"  {s.prob:7.4f}  {s.name} ({s.index})")
        results.append({"file": str(path), "top": [s._asdict() for s in scores]})
    if args.json:
        _write_json(results, args.json)
    return 0
