"""``hrnet seg train | eval | predict``: the command line of the segmentation task.

* ``train --config YAML [--set key=value ...] --out DIR [--resume CKPT]``: runs the engine; works under
  ``torchrun`` (DDP, SyncBN via ``train.sync_bn``).
* ``eval --config YAML --weights FILE [--json OUT] [--mode slide --scales 0.5 1 1.5 --flip]``: prints
  mIoU, pixel accuracy, mean accuracy and per-class IoU; ``--json`` writes them (``per_class`` maps class
  name -> IoU, ``null`` for classes absent from both prediction and ground truth).
* ``predict INPUT... --weights FILE (--config YAML | --model NAME [--dataset PRESET]) --out DIR``: writes
  ``<stem>_labels.png`` (palette PNG holding class indices) and ``<stem>_overlay.png`` (colours + legend).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hrnet.atomic import write_json
from hrnet.engine.config import add_run_options, add_train_verb


def _add_inference(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=("whole", "slide"), default=None, help="inference mode (default: config)")
    p.add_argument("--crop-size", nargs=2, type=int, metavar=("H", "W"), help="sliding-window size")
    p.add_argument("--scales", nargs="+", type=float, help="test scales, e.g. 0.5 0.75 1 1.25 1.5 1.75")
    p.add_argument("--flip", action="store_true", default=None, help="average with the mirrored image")


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """Add the ``train``, ``eval`` and ``predict`` verbs to ``hrnet seg``."""
    sub = parser.add_subparsers(dest="verb", required=True)

    example = "train.optim.lr=0.005 data.root=/data/cityscapes"
    add_train_verb(sub, help="train a segmentation model from a config",
                   example_config="configs/seg/cityscapes/w48.yaml", default_out="runs/seg", func=cmd_train,
                   example=example)

    p = sub.add_parser("eval", help="mIoU, pixel and mean accuracy, per-class IoU on the validation split")
    p.add_argument("--config", required=True)
    p.add_argument("--weights", required=True, help="weights (ours, official HRNet or mmseg checkpoints)")
    p.add_argument("--split", default=None, help="split to evaluate (default: data.val_split)")
    p.add_argument("--json", default=None, metavar="OUT", help="write the scores as JSON")
    _add_inference(p)
    add_run_options(p, example)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="label PNGs and colour overlays for images")
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("--weights", default=None, help="weights file (random weights without it: for smoke tests)")
    p.add_argument("--config", default=None, help="experiment YAML (model, classes and test settings)")
    p.add_argument("--model", default=None, help="model name when no config is given, e.g. seg_hrnet_w48")
    p.add_argument("--dataset", default=None, help="class preset without a config: cityscapes, lip, "
                   "pascal_context59, pascal_context60")
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--out", default="runs/seg_predict")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")
    p.add_argument("--no-legend", action="store_true")
    _add_inference(p)
    add_run_options(p, example)
    p.set_defaults(func=cmd_predict)


def _load(args: argparse.Namespace):
    from hrnet.engine.config import load_config
    from hrnet.segmentation.config import SegConfig

    cfg = load_config(SegConfig, args.config, args.overrides)
    if getattr(args, "mode", None):
        cfg.test.mode = args.mode
    if getattr(args, "crop_size", None):
        cfg.test.crop_size = list(args.crop_size)
    if getattr(args, "scales", None):
        cfg.test.scales = list(args.scales)
    if getattr(args, "flip", None):
        cfg.test.flip = True
    if cfg.test.mode == "slide" and not cfg.test.crop_size:
        cfg.test.crop_size = list(cfg.data.crop_size)
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    """``hrnet seg train``."""
    from hrnet.segmentation.train import train

    cfg = _load(args)
    metrics = train(cfg, args.out, resume=args.resume, device=args.device)
    if metrics:
        print(json.dumps(metrics, indent=2))
    return 0


def _write_json(obj: dict, path: str | Path) -> None:
    write_json(path, obj)


def cmd_eval(args: argparse.Namespace) -> int:
    """``hrnet seg eval``."""
    import torch

    from hrnet.engine.distributed import init_distributed
    from hrnet.models.weights import load_weights
    from hrnet.segmentation.train import build_dataset, build_model, evaluate_dataset

    cfg = _load(args)
    cfg.model.pretrained = None
    dist = init_distributed(args.device)
    model = build_model(cfg)
    load_weights(model, args.weights)
    model.to(dist.device)
    dataset = build_dataset(cfg.data, args.split or cfg.data.val_split, train=False, test_resize=cfg.test.resize_to)
    with torch.inference_mode():
        scores = evaluate_dataset(model, dataset, cfg.test, dist.device, dist.rank, dist.world_size)
    if dist.is_main:
        print(f"mIoU {scores['mIoU'] * 100:.2f}  pixel_acc {scores['pixel_acc'] * 100:.2f}  "
              f"mean_acc {scores['mean_acc'] * 100:.2f}  ({len(dataset)} images)")
        for name, iou in scores["per_class"].items():
            print(f"  {name:<16} {'-' if iou is None else f'{iou * 100:.2f}'}")
        if args.json:
            _write_json(scores, args.json)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """``hrnet seg predict``."""
    from hrnet.io import IMAGE_SUFFIXES, list_inputs
    from hrnet.segmentation.api import Segmenter
    from hrnet.segmentation.visualize import save_label_png, save_rgb

    device = args.device or "cpu"
    if args.config:
        from hrnet.segmentation.train import build_model, class_info

        cfg = _load(args)
        cfg.model.pretrained = None
        names, palette, pairs = class_info(cfg.data)
        seg = Segmenter(
            build_model(cfg), weights=args.weights, class_names=names, palette=palette, flip_pairs=pairs,
            device=device, mode=cfg.test.mode, crop_size=cfg.test.crop_size, stride=cfg.test.stride,
            scales=cfg.test.scales, flip=cfg.test.flip, resize_to=cfg.test.resize_to, mean=cfg.data.mean,
            std=cfg.data.std,
        )
    else:
        if not args.model:
            raise ValueError("predict needs --config or --model")
        mode = args.mode or "whole"
        seg = Segmenter(
            args.model, weights=args.weights, num_classes=args.num_classes, dataset=args.dataset, device=device,
            mode=mode, crop_size=args.crop_size, scales=args.scales or (1.0,), flip=bool(args.flip),
        )
    out = Path(args.out)
    skipped = 0
    written = 0
    for path in list_inputs(args.inputs):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            print(f"hrnet: skipping {path}: not an image")
            skipped += 1
            continue
        result = seg(path)
        save_label_png(result.labels, out / f"{path.stem}_labels.png", seg.palette)
        save_rgb(result.plot(alpha=args.alpha, legend=not args.no_legend), out / f"{path.stem}_overlay.png")
        written += 1
    print(f"wrote {written} label maps and overlays to {out}" + (f" (skipped {skipped} non-images)" if skipped else ""))
    return 0
