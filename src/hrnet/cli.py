"""The `hrnet` command line: model verbs here, task verbs in each task's ``cli`` module.

Each task's spec (:mod:`hrnet.registry`) names its ``add_subcommands(parser)``; it adds the task's own
verbs (train / eval / predict / check-data) and binds each to a function ``f(args) -> int`` through
``set_defaults(func=...)``. Only the task named on the command line is imported, so the verbs of one task
never pay for another's dependencies. Logging is configured here, once, for every verb.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from hrnet.cli_common import setup_logging
from hrnet.export import add_export_parser
from hrnet.loader import create_model, default_input_size, list_models
from hrnet.models.complexity import model_complexity
from hrnet.pose.demo import run_demo
from hrnet.pretrained import add_pretrained_commands, format_pretrained_table, pretrained_table
from hrnet.registry import names as task_names
from hrnet.registry import spec_of_model, specs
from hrnet.version import __version__


def _cmd_list(args: argparse.Namespace) -> int:
    if args.pretrained:
        rows = [r for r in pretrained_table(args.task) if args.filter is None or args.filter in r["name"]]
        if args.json:
            print(json.dumps(rows, indent=1))
        else:
            print("\n".join(format_pretrained_table(rows)))
        return 0
    names = list_models(args.filter, task=args.task)
    if args.json:
        by_task: dict[str, list[str]] = {}
        for name in names:
            by_task.setdefault(spec_of_model(name).name, []).append(name)
        print(json.dumps(by_task, indent=1))
        return 0
    for name in names:
        print(f"{spec_of_model(name).name:5} {name}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    model = create_model(args.name).eval()
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
    return run_demo(data=args.data, out=args.out, epochs=args.epochs, seed=args.seed)


def build_parser(load_tasks: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; only the task verbs in ``load_tasks`` (default: all) are imported."""
    parser = argparse.ArgumentParser(prog="hrnet", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"hrnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list model names of every task")
    p.add_argument("filter", nargs="?", default=None, help="substring to filter names")
    p.add_argument("--task", choices=task_names(), default=None, help="only this task's models")
    p.add_argument("--pretrained", action="store_true", help="the published weights (metric, input, licence, cached)")
    p.add_argument("--json", action="store_true", help="print JSON ({task: [names]}, or the rows with --pretrained)")
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

    add_export_parser(sub)
    add_pretrained_commands(sub)

    for spec in specs():
        tp = sub.add_parser(spec.name, help=spec.help)
        if load_tasks is None or spec.name in load_tasks:
            spec.cli.load()(tp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hrnet`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # import a task's module (and its heavier dependencies) only when its verbs are used
    wanted = [a for a in argv[:1] if a in task_names()]
    args = build_parser(wanted).parse_args(argv)
    setup_logging()
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
