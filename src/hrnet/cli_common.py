"""Argparse helpers and the predict loop that every task's command line shares.

Every task has the same verbs with the same flags: ``train`` (:func:`add_train_verb`), ``eval`` and
``predict`` (:func:`add_predict_verb`), plus the run options of :func:`add_run_options`. The predict
loop (:func:`run_predict`) is written once: inputs from :mod:`hrnet.inputs`, batches through the task's
facade, one picture per input (videos are written back as videos) under a fresh run folder, and a
``results.json`` that is written even when a bad input stops the run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hrnet.atomic import write_json
from hrnet.inputs import Frame, InputFile, expand_inputs, read_frames, video_fps
from hrnet.results import Result

log = logging.getLogger("hrnet")
RESULTS_FILE = "results.json"


class BadInputError(ValueError):
    """An input that cannot be used (unreadable image or video) when ``--skip-bad`` is not given."""


def setup_logging() -> None:
    """Plain INFO messages on stderr for command-line runs (library users configure logging themselves)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)


def add_run_options(parser: argparse.ArgumentParser, example: str = "train.optim.lr=5e-4") -> None:
    """The options every task verb shares: ``--set KEY=VALUE ...`` (config overrides, repeatable),
    ``--device`` and ``--debug``. Pass ``args.overrides`` on to :func:`hrnet.engine.config.load_config`."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help=f"override config fields, e.g. {example}",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")


def add_train_verb(
    sub: argparse._SubParsersAction,
    *,
    help: str,
    example_config: str,
    default_out: str,
    func: Any,
    example: str = "train.optim.lr=5e-4",
) -> argparse.ArgumentParser:
    """The ``train`` verb, identical for every task: ``--config``, ``--out``, ``--resume`` and the run options."""
    p = sub.add_parser("train", help=help)
    p.add_argument("--config", required=True, help=f"experiment YAML, e.g. {example_config}")
    p.add_argument("--out", default=default_out, help="output folder (checkpoints, metrics.jsonl, config.yaml)")
    p.add_argument("--resume", default=None, help="checkpoint to continue from (e.g. OUT/last.pt)")
    add_run_options(p, example)
    p.set_defaults(func=func)
    return p


def add_eval_verb(
    sub: argparse._SubParsersAction, *, help: str, weights_help: str, json_what: str, func: Any, example: str
) -> argparse.ArgumentParser:
    """The ``eval`` verb of the config-driven tasks: ``--config``, ``--weights``, ``--json`` and the run
    options; the task adds its own flags (``--results``, ``--split`` ...) on the returned parser."""
    p = sub.add_parser("eval", help=help)
    p.add_argument("--config", required=True)
    p.add_argument("--weights", required=True, help=weights_help)
    add_json_option(p, json_what)
    add_run_options(p, example)
    p.set_defaults(func=func)
    return p


def add_json_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--json [OUT]``: write ``what`` as JSON to OUT, or to standard output when no file is named."""
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="OUT",
        help=f"write {what} as JSON to OUT (standard output when OUT is left out)",
    )


def emit_json(obj: Any, dest: str | None) -> None:
    """Write ``obj`` where ``--json`` asked: nowhere (None), standard output ("-") or a file (atomically)."""
    if dest is None:
        return
    if dest == "-":
        print(json.dumps(obj, indent=1))
    else:
        write_json(dest, obj)


def add_predict_verb(
    sub: argparse._SubParsersAction, *, task: str, help: str, func: Any, example: str, epilog: str | None = None
) -> argparse.ArgumentParser:
    """The ``predict`` verb with the flags every task shares; the task adds its own after this."""
    p = sub.add_parser("predict", help=help, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image or video files, folders (searched recursively) or quoted globs ('imgs/*.jpg')",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="weights file or hf-hub:org/repo; one written by hrnet carries its model card and is enough",
    )
    p.add_argument("--model", default=None, help="model name for weights without a model card")
    p.add_argument("--config", default=None, help="experiment YAML (model, labels, input size, test settings)")
    p.add_argument(
        "--out",
        default=f"runs/{task}_predict",
        help="output folder; each run writes a fresh subfolder run-NNN in it (default %(default)s)",
    )
    p.add_argument("--exist-ok", action="store_true", help="write into --out itself, replacing same-named outputs")
    add_json_option(p, f"the {task} results (always written to RUN/{RESULTS_FILE} as well)")
    p.add_argument("--batch-size", type=int, default=8, help="images per network batch (default %(default)s)")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable inputs (listed and counted in the results) instead of stopping",
    )
    p.add_argument("--no-save", action="store_true", help="write only results.json, no pictures")
    p.add_argument(
        "--runtime",
        default="auto",
        choices=("auto", "eager", "torch", "compile", "onnx"),
        help="how the network runs (default auto: the fastest installed runtime, checked against eager)",
    )
    add_run_options(p, example)
    p.set_defaults(func=func)
    return p


def make_run_dir(out: str | Path, exist_ok: bool = False) -> Path:
    """A fresh ``out/run-NNN`` folder (created atomically, so two runs never share one), or ``out`` itself
    with ``exist_ok``. A path that exists and is not a folder is an error naming it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: --out exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    if exist_ok:
        return out
    taken = [int(p.name[4:]) for p in out.glob("run-*") if p.name[4:].isdigit()]
    n = max(taken, default=0) + 1
    while True:
        run = out / f"run-{n:03d}"
        try:
            run.mkdir()
            return run
        except FileExistsError:
            n += 1


class _VideoSink:
    """Writes the drawn frames of one input video as ``RUN/<rel>`` (mp4v), opened on the first frame."""

    def __init__(self, source: InputFile, path: Path) -> None:
        self.source, self.path, self.writer = source, path.with_suffix(".mp4"), None

    def write(self, rgb) -> None:  # noqa: ANN001 - numpy array
        import cv2

        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = rgb.shape[:2]
            self.writer = cv2.VideoWriter(
                str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), video_fps(self.source.path), (w, h)
            )
            if not self.writer.isOpened():
                raise OSError(f"{self.path}: cannot write the video")
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            os.chmod(self.path, 0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def run_predict(
    args: argparse.Namespace,
    *,
    task: str,
    predict: Callable[[list[Frame]], Sequence[Result]],
    info: dict[str, Any],
    notes: Sequence[str] = (),
) -> int:
    """The predict loop of every task: inputs -> batches -> ``predict`` -> pictures + ``results.json``.

    Without ``--skip-bad`` the first unreadable input stops the run (exit 2, its name in one line) after
    everything before it has been written; with it, bad inputs are listed under ``skipped``. The JSON
    records follow the input order; each holds the result's ``to_json()`` plus its output files.
    ``notes`` (how the inputs were interpreted) are printed with the summary and kept in the JSON.
    """
    from tqdm import tqdm

    files = expand_inputs(args.inputs)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    run_dir = make_run_dir(args.out, args.exist_ok)
    records: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    sinks: dict[Path, _VideoSink] = {}
    stopped: str | None = None
    progress = tqdm(total=len(files), unit="file", desc=f"{task} predict", disable=None, file=sys.stderr)
    last_file: Path | None = None

    def handle(frames: list[Frame]) -> None:
        nonlocal last_file
        for frame, result in zip(frames, predict(frames) if frames else []):
            output: Any = None
            if not args.no_save and frame.source is not None:
                target = run_dir / frame.source.rel
                if frame.source.is_video:
                    sink = sinks.setdefault(frame.source.path, _VideoSink(frame.source, target))
                    sink.write(result.plot())
                    output = str(sink.path.relative_to(run_dir))
                else:
                    output = [str(p.relative_to(run_dir)) for p in result.save(target)]
            record: dict[str, Any] = {**result.to_json(), "file": frame.name}
            if frame.source is not None and frame.source.is_video:
                record["frame"] = frame.index
            if output is not None:
                record["output"] = output
            records.append(record)
        for frame in frames:
            if frame.source is not None and frame.source.path != last_file:
                last_file = frame.source.path
                progress.update(1)

    try:
        pending: list[Frame] = []
        for frame in read_frames(files):
            if frame.error is not None:
                handle(pending)  # what came before the bad input is written either way
                pending = []
                if not args.skip_bad:
                    stopped = frame.error
                    raise BadInputError(f"{frame.error} (use --skip-bad to skip bad inputs)")
                skipped.append({"file": frame.name, "error": frame.error})
                log.warning("skipped %s", frame.error)
                continue
            pending.append(frame)
            if len(pending) == args.batch_size:
                handle(pending)
                pending = []
        handle(pending)
    finally:
        progress.close()
        for sink in sinks.values():
            sink.close()
        report = {
            "task": task,
            **info,
            "notes": list(notes),
            "run_dir": str(run_dir),
            "inputs": len(files),
            "done": len(records),
            "skipped": skipped,
            "stopped_by": stopped,
            "results": records,
        }
        write_json(run_dir / RESULTS_FILE, report, indent=1)
        emit_json(report, args.json)
        extra = f", {len(skipped)} skipped (bad input)" if skipped else ""
        stop = " (stopped by a bad input)" if stopped else ""
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        print(
            f"{task} predict: {len(records)} results from {len(files)} inputs{extra}{stop} -> {run_dir / RESULTS_FILE}",
            file=sys.stderr,
        )
    return 0
