"""The `hrnet` command line: model verbs here, task verbs in each task's ``cli`` module.

Each task package exposes ``add_subcommands(parser)``; it adds its own verbs (train / eval / predict)
and binds each to a function ``f(args) -> int`` through ``set_defaults(func=...)``. Keeping the verbs
next to the task code means the CLI and the Python API of a task are written side by side.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

# task name on the command line -> module that defines ``add_subcommands``
_TASKS = {
    "pose": ("hrnet.pose.cli", "human pose estimation (HRNetV1)"),
    "seg": ("hrnet.segmentation.cli", "semantic segmentation (HRNetV2)"),
    "cls": ("hrnet.classification.cli", "ImageNet-style classification (HRNet-Wx-C)"),
    "det": ("hrnet.detection.cli", "object detection and instance segmentation (HRNetV2p)"),
}


def _cmd_list(args: argparse.Namespace) -> int:
    from hrnet.models.zoo import list_models

    for name in list_models(args.filter):
        print(name)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from hrnet.models.complexity import model_complexity
    from hrnet.models.zoo import create_model, default_input_size

    model = create_model(args.name)
    size = tuple(args.input_size) if args.input_size else default_input_size(args.name)
    info = {"name": args.name, "input_size": list(size), **model_complexity(model, size)}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"{args.name}  input {size[0]}x{size[1]}")
        print(f"  params  {info['params']:,} ({info['params'] / 1e6:.1f}M)")
        print(f"  GFLOPs  {info['gflops']:.2f}  (paper convention: conv+linear multiply-adds / 2^30)")
        print(f"  GMACs   {info['gmacs']:.2f}  (multiply-adds / 1e9)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from hrnet.pose.demo import run_demo

    return run_demo(data=args.data, out=args.out, epochs=args.epochs, seed=args.seed)


def build_parser(load_tasks: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; only the task verbs in ``load_tasks`` (default: all) are imported."""
    from hrnet import __version__

    parser = argparse.ArgumentParser(prog="hrnet", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"hrnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list model names")
    p.add_argument("filter", nargs="?", default=None, help="substring to filter names")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("info", help="parameters and GFLOPs of a model")
    p.add_argument("name")
    p.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"))
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("demo", help="synthetic pose dataset -> train -> COCO evaluation, on the CPU")
    p.add_argument("--data", default=None, help="a COCO-format keypoint dataset folder instead of synthetic")
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the demo recipe's 6)")
    p.add_argument("--seed", type=int, default=0, help="seed for the synthetic data and the training")
    p.set_defaults(func=_cmd_demo)

    from hrnet.export import add_export_parser

    add_export_parser(sub)

    for task, (module, help_text) in _TASKS.items():
        tp = sub.add_parser(task, help=help_text)
        if load_tasks is None or task in load_tasks:
            importlib.import_module(module).add_subcommands(tp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hrnet`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # import a task's module (and its heavier dependencies) only when its verbs are used
    wanted = [a for a in argv[:1] if a in _TASKS]
    args = build_parser(wanted).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, ImportError) as err:
        # bad input, a path that cannot be written, a missing optional extra: one line, exit 2
        if getattr(args, "debug", False):
            raise
        print(f"hrnet: error: {_describe_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hrnet: interrupted", file=sys.stderr)
        return 130


def _describe_error(err: BaseException) -> str:
    """One line for the user: OS errors as 'path: reason' (the path they gave), others as they are."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
