"""Argparse helpers and the predict loop that every task's command line shares.

Every task has the same verbs with the same flags: ``train`` (:func:`add_train_verb`), ``eval`` and
``predict`` (:func:`add_predict_verb`), plus the run options of :func:`add_run_options`. The predict
loop (:func:`run_predict`) is written once: inputs from :mod:`hrnet.inputs`, batches through the task's
facade, one picture per input (videos are written back as videos, frame by frame) under a fresh run
folder, a ``results.jsonl`` written line by line and a ``results.json`` that is written even when a bad
input or Ctrl-C stops the run. The ``track`` verbs (:func:`add_track_verb`) run the same loop.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import cv2
import yaml
from tqdm import tqdm

from hrnet.atomic import atomic_path, write_json
from hrnet.engine.config import load_config
from hrnet.engine.rundir import make_run_dir as engine_make_run_dir
from hrnet.inputs import DEFAULT_FPS, Frame, InputFile, expand_inputs, read_frames
from hrnet.models.card import ModelCard
from hrnet.results import RANDOM_WEIGHTS, Result, warn_random_weights
from hrnet.runtime import RUNTIMES
from hrnet.track.session import TrackOptions
from hrnet.track.writers import TrackFiles, check_eval

log = logging.getLogger("hrnet")
RESULTS_FILE = "results.json"
RECORDS_FILE = "results.jsonl"  # one line per frame, flushed as the run goes
INTERRUPTED = "interrupted"  # results.json's stopped_by after Ctrl-C
T = TypeVar("T")


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


TRAIN_OUT_RULE = (
    "Where it writes: --out OUT when OUT does not exist or is empty; otherwise a fresh OUT/run-NNN "
    "(run-002, run-003, ...), so an earlier run is never overwritten; --exist-ok writes into OUT, replacing "
    "an earlier run's files; --resume OUT/last.pt continues in the checkpoint's folder. The folder is "
    "printed at the start and locked (OUT/train.lock) while the run writes."
)


def add_train_verb(
    sub: argparse._SubParsersAction,
    *,
    help: str,
    example_config: str,
    default_out: str,
    func: Any,
    example: str = "train.optim.lr=5e-4",
) -> argparse.ArgumentParser:
    """The ``train`` verb, identical for every task: ``--config``, ``--out``, ``--resume``, ``--exist-ok`` and
    the run options. ``args.out`` is None when ``--out`` is not given; :func:`train_out` resolves it."""
    p = sub.add_parser(
        "train",
        help=help,
        description=f"{help}. {TRAIN_OUT_RULE}",
    )
    p.add_argument("--config", required=True, help=f"experiment YAML, e.g. {example_config}")
    p.add_argument(
        "--out",
        default=None,
        help=f"run folder (checkpoints, metrics.jsonl, config.yaml, model_best.safetensors; default {default_out}): "
        "used when it does not exist or is empty, else a fresh OUT/run-NNN is made in it",
    )
    p.add_argument(
        "--resume", default=None, help="checkpoint to continue from (OUT/last.pt); the run continues in its folder"
    )
    p.add_argument(
        "--exist-ok",
        action="store_true",
        help="write into --out itself even if an earlier run is there, replacing its files",
    )
    add_run_options(p, example)
    p.set_defaults(func=func, default_out=default_out)
    return p


def train_out(args: argparse.Namespace) -> str | None:
    """The ``out`` of ``train(cfg, out, ...)``: ``--out``, else the task's default, else None with
    ``--resume`` (the run continues in the checkpoint's folder)."""
    if args.out is not None or args.resume is not None:
        return args.out
    return args.default_out


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
    sub: argparse._SubParsersAction,
    *,
    task: str,
    help: str,
    func: Any,
    example: str,
    epilog: str | None = None,
    verb: str = "predict",
) -> argparse.ArgumentParser:
    """The ``predict`` verb with the flags every task shares; the task adds its own after this. ``verb``
    names another verb with the same flags (``track``)."""
    p = sub.add_parser(verb, help=help, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image or video files, folders (searched recursively), quoted globs ('imgs/*.jpg'), a webcam "
        "index (0) or a stream URL OpenCV opens (rtsp://, http://, file://)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="a zoo name (model.tag: hrnet list --pretrained; downloaded and verified once), a weights file, "
        "an http(s) URL (#sha256=HEX checked) or hf-hub:org/repo[/file]; a carded file (the zoo's, or one "
        "written by hrnet) is enough alone; default: the task's default zoo entry",
    )
    p.add_argument(
        "--model",
        default=None,
        help="model name for weights without a model card (alone: random weights, for a quick check)",
    )
    p.add_argument("--config", default=None, help="experiment YAML (model, labels, input size, test settings)")
    p.add_argument(
        "--out",
        default=f"runs/{task}_{verb}",
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
        choices=RUNTIMES,
        help="how the network runs (default auto: eager until the images in hand pay for a faster runtime's "
        "setup, then torch or a cached ONNX export, checked against eager)",
    )
    add_run_options(p, example)
    p.set_defaults(func=func, verb_name=verb)
    return p


def add_track_verb(
    sub: argparse._SubParsersAction,
    *,
    task: str,
    help: str,
    func: Any,
    example: str,
    epilog: str | None = None,
    det_every: bool = False,
) -> argparse.ArgumentParser:
    """The ``track`` verb: the predict flags plus the tracking ones (:class:`hrnet.track.TrackOptions`);
    ``det_every`` adds ``--det-every`` (top-down pose, which can carry boxes from keypoints)."""
    p = add_predict_verb(sub, task=task, help=help, func=func, example=example, epilog=epilog, verb="track")
    g = p.add_argument_group("tracking")
    g.add_argument(
        "--keep-alive",
        type=int,
        default=30,
        metavar="FRAMES",
        help="frames a lost track waits for its object to come back with its ID (default %(default)s)",
    )
    g.add_argument(
        "--iou-thr",
        type=float,
        default=0.3,
        help="box IoU at which a detection may continue a track (default %(default)s)",
    )
    if det_every:
        g.add_argument(
            "--oks-thr", type=float, default=0.5, help="or keypoint OKS at which it may (default %(default)s)"
        )
        g.add_argument(
            "--det-every",
            type=int,
            default=1,
            metavar="N",
            help="run the detector on every N-th frame only; between, the boxes come from the previous frame's "
            "keypoints (faster; see docs/video.md for the cost; default %(default)s: every frame)",
        )
    g.add_argument(
        "--smooth",
        default="auto",
        choices=("auto", "one-euro", "ema", "none"),
        help="smoothing of the tracked points (default auto: one-euro for videos and streams, none for images)",
    )
    g.add_argument("--min-cutoff", type=float, default=1.0, help="one-euro minimum cut-off in Hz (default %(default)s)")
    g.add_argument(
        "--beta", type=float, default=0.01, help="one-euro speed coefficient in 1/pixel (default %(default)s)"
    )
    g.add_argument(
        "--d-cutoff", type=float, default=1.0, help="one-euro cut-off of the speed in Hz (default %(default)s)"
    )
    g.add_argument(
        "--ema-alpha", type=float, default=0.5, help="weight of the new frame for --smooth ema (default %(default)s)"
    )
    g.add_argument(
        "--fps",
        type=float,
        default=25.0,
        help="frame rate of image sequences (videos use their own; default %(default)s)",
    )
    g.add_argument("--csv", action="store_true", help="also write RUN/<video>.tracks.csv: one row per object and frame")
    g.add_argument(
        "--eval",
        default=None,
        metavar="GT.txt",
        help="score the tracks against MOT-format ground truth (MOTA, IDF1, ID switches; needs hrnet[track])",
    )
    return p


def track_setup(
    args: argparse.Namespace, **defaults: Any
) -> tuple[TrackOptions, Callable[[Path, list[InputFile]], Sequence[FrameWriter]]]:
    """What a task's ``track`` command needs from the tracking flags: the options (``defaults`` for the
    ones the task's flags do not give) and the writers of the track files for :func:`run_predict`. A bad
    option, ``--eval`` without motmetrics, or a ground-truth file that does not read stops here, before
    any run folder is made."""
    options = TrackOptions.from_kwargs({**defaults, **track_options(args)})
    if args.eval is not None:
        check_eval(args.eval, expand_inputs(args.inputs))

    def writers(run_dir: Path, files: list[InputFile]) -> list[FrameWriter]:
        return [TrackFiles(run_dir, csv=args.csv, eval_gt=args.eval)]

    return options, writers


def track_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`hrnet.track.TrackOptions` keywords of the ``track`` flags."""
    names = (
        "keep_alive",
        "iou_thr",
        "oks_thr",
        "det_every",
        "smooth",
        "min_cutoff",
        "beta",
        "d_cutoff",
        "ema_alpha",
        "fps",
    )
    return {n: getattr(args, n) for n in names if hasattr(args, n)}


def make_run_dir(out: str | Path, exist_ok: bool = False) -> Path:
    """A fresh ``out/run-NNN`` folder (created atomically, so two runs never share one), or ``out`` itself
    with ``exist_ok``; the engine's rule (:func:`hrnet.engine.rundir.make_run_dir`), which training's
    run folders share."""
    return engine_make_run_dir(out, exist_ok)


class FrameWriter(Protocol):
    """An extra output of the predict loop, fed every result as it comes (the track files)."""

    def write(self, frame: Frame, result: Any) -> Any:
        """Add one frame's result."""
        ...

    def close(self) -> dict[str, Any]:
        """Finish; what it returns is added to ``results.json``."""
        ...


class _VideoSink:
    """Writes the drawn frames of one input video as ``RUN/<rel>`` (mp4v), opened on the first frame and
    written frame by frame; closed when the run moves on to the next input (or stops), which makes the
    file playable."""

    def __init__(self, source: InputFile, path: Path) -> None:
        self.source, self.path, self.writer = source, path.with_suffix(".mp4"), None

    def write(self, rgb, fps: float | None = None) -> None:  # noqa: ANN001 - numpy array
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = rgb.shape[:2]
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), fps or DEFAULT_FPS, (w, h))
            if not self.writer.isOpened():
                raise OSError(f"{self.path}: cannot write the video")
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            os.chmod(self.path, 0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_report(path: Path, head: dict[str, Any], records: Path) -> None:
    """``results.json``: ``head`` with the records of ``results.jsonl`` as its last key, ``results``, copied
    line by line (never all in memory), atomically. A line cut short by a hard kill is left out."""
    body = json.dumps({**head, "results": []}, indent=1)
    prefix, suffix = body.rsplit('"results": []', 1)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        out.write(prefix + '"results": [')
        sep = "\n"
        if records.is_file():
            with open(records, encoding="utf-8") as fh:
                for line in fh:
                    if not line.endswith("\n"):
                        break
                    out.write(sep + line[:-1])
                    sep = ",\n"
        out.write("\n]" + suffix)


def _emit_report(path: Path, dest: str | None) -> None:
    """``--json``: the written report to standard output ("-") or to another file (atomically)."""
    if dest is None:
        return
    if dest == "-":
        with open(path, encoding="utf-8") as fh:
            shutil.copyfileobj(fh, sys.stdout)
        print()
        return
    with atomic_path(dest) as tmp:
        shutil.copyfile(path, tmp)


def run_predict(
    args: argparse.Namespace,
    *,
    task: str,
    predict: Callable[[list[Frame]], Sequence[Result]],
    info: dict[str, Any],
    notes: Sequence[str] = (),
    plot_options: dict[str, Any] | None = None,
    writers: Callable[[Path, list[InputFile]], Sequence[FrameWriter]] | None = None,
) -> int:
    """The predict loop of every task: inputs -> batches -> ``predict`` -> pictures + ``results.json``.

    It streams: frames are read one batch at a time, each result is drawn (videos frame by frame into
    ``RUN/<video>.mp4``), appended to ``RUN/results.jsonl`` and dropped, so memory stays flat over a long
    video or a live stream. ``results.json`` (settings, counts, ``stopped_by``, ``last`` frame done, and
    the records) is assembled from the JSON lines at the end, also when the run stops.
    Without ``--skip-bad`` the first unreadable input stops the run (exit 2, its name in one line) after
    everything before it has been written; with it, bad inputs are listed under ``skipped``. The JSON
    records follow the input order; each holds the result's ``to_json()`` plus its output files.
    ``notes`` (how the inputs were interpreted) are printed with the summary and kept in the JSON.
    An interrupted run (Ctrl-C, SIGINT) closes its videos (they play), writes what it has done with
    ``stopped_by: "interrupted"`` and re-raises. ``plot_options`` (the task's drawing flags) go to every
    ``result.save`` / ``result.plot``. ``writers(run_dir, files)`` makes extra outputs fed every result
    (the track files); what their ``close()`` returns is added to the report. A result's
    :meth:`~hrnet.results.Result.warnings` are printed as ``warning: FILE: ...`` (once per file for a
    video) besides being in its JSON record.
    """

    files = expand_inputs(args.inputs)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    verb = getattr(args, "verb_name", "predict")
    run_dir = make_run_dir(args.out, args.exist_ok)
    records_path = run_dir / RECORDS_FILE
    records: IO[str] = open(records_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in the finally below
    done = 0
    last: str | None = None
    skipped: list[dict[str, str]] = []
    sink: _VideoSink | None = None
    extra: list[FrameWriter] = []
    stopped: str | None = None
    progress = tqdm(total=len(files), unit="file", desc=f"{task} {verb}", disable=None, file=sys.stderr)
    last_file: InputFile | None = None
    options = dict(plot_options or {})
    warned: set[tuple[str, str]] = set()
    failure: BaseException | None = None

    def handle(frames: list[Frame]) -> None:
        nonlocal last_file, sink, done, last
        for frame, result in zip(frames, predict(frames) if frames else []):
            where = str(frame.source.rel) if frame.source is not None else frame.name
            if frame.source is not None and frame.source != last_file:
                last_file = frame.source
                progress.update(1)
                if sink is not None:  # the previous video is complete: close it now, not at the end
                    sink.close()
                    sink = None
            for text in result.warnings():
                if (where, text) not in warned:
                    warned.add((where, text))
                    print(f"warning: {where}: {text}", file=sys.stderr)
            output: Any = None
            if not args.no_save and frame.source is not None:
                target = run_dir / frame.source.rel
                if frame.source.is_video:
                    if sink is None:
                        sink = _VideoSink(frame.source, target)
                    sink.write(result.plot(**options), frame.fps)
                    output = str(sink.path.relative_to(run_dir))
                else:
                    output = [str(p.relative_to(run_dir)) for p in result.save(target, **options)]
            for writer in extra:
                writer.write(frame, result)
            record: dict[str, Any] = {**result.to_json(), "file": frame.name}
            if frame.source is not None and frame.source.is_video:
                record["frame"] = frame.index
            if output is not None:
                record["output"] = output
            records.write(json.dumps(record) + "\n")
            records.flush()
            done += 1
            last = frame.name

    try:
        extra = list(writers(run_dir, files)) if writers is not None else []
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
    except KeyboardInterrupt:  # Ctrl-C: what was done is written, and the report says the run stopped early
        stopped = INTERRUPTED
        raise
    finally:
        progress.close()
        records.close()
        if sink is not None:
            sink.close()
        report: dict[str, Any] = {"task": task, "verb": verb, **info}
        for writer in extra:
            try:
                report.update(writer.close())
            except (ValueError, OSError, ImportError) as err:  # the report is written first, then the error
                failure = failure or err
        report.update(
            {
                "notes": list(notes),
                "run_dir": str(run_dir),
                "inputs": len(files),
                "done": done,
                "last": last,
                "skipped": skipped,
                "stopped_by": stopped,
            }
        )
        _write_report(run_dir / RESULTS_FILE, report, records_path)
        _emit_report(run_dir / RESULTS_FILE, args.json)
        more = f", {len(skipped)} skipped (bad input)" if skipped else ""
        stop = " (interrupted)" if stopped == INTERRUPTED else " (stopped by a bad input)" if stopped else ""
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        metrics = report.get("tracking_metrics")
        if metrics:
            shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
            print(f"tracking: {shown}", file=sys.stderr)
        if stopped and last:
            print(f"{task} {verb}: stopped after {last}", file=sys.stderr)
        print(
            f"{task} {verb}: {done} results from {len(files)} inputs{more}{stop} -> {run_dir / RESULTS_FILE}",
            file=sys.stderr,
        )
    if failure is not None:
        raise failure
    return 0


# --------------------------------------------------------------------------------------------------
# predict with carded weights: --config / --set change test-time settings only


def _config_keys(config: str | Path | None) -> list[str]:
    """The dotted leaf keys a YAML config file sets (``test.flip_test``, ``model.overrides.width``); a file
    that cannot be read gives none here (:func:`hrnet.engine.config.load_config` reports it)."""
    if config is None or not Path(config).is_file():
        return []
    try:
        data = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return []
    keys: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        elif prefix:
            keys.append(prefix[:-1])

    walk(data, "")
    return keys


def _matches(key: str, patterns: Sequence[str]) -> bool:
    """``key`` is one of ``patterns`` (or below one); a pattern ending in "." is a prefix."""
    return any(key.startswith(p) if p.endswith(".") else key == p or key.startswith(p + ".") for p in patterns)


def _lookup(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        cfg = cfg[part] if isinstance(cfg, dict) else getattr(cfg, part)
    return cfg


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))  # tuples -> lists, for comparing with a card's JSON


def config_over_card(
    cls: type[T],
    config: str | Path | None,
    overrides: Sequence[str],
    *,
    weights: str | Path,
    card: ModelCard,
    test_keys: Sequence[str] = ("test.",),
    applied: Collection[str] = (),
    network: Mapping[str, tuple[Callable[[T], Any], Any]] | None = None,
    unit: str = "outputs",
) -> tuple[T, dict[str, Any]]:
    """``--config`` / ``--set`` of ``hrnet <task> predict`` on top of carded ``weights``: the card fixes the
    network, so only test-time settings apply. One rule for the four tasks.

    ``test_keys`` are the dotted keys predict may change (a pattern ending in "." is a prefix, e.g.
    ``test.``). A ``--set`` of any other key is an error naming it; ``model.*`` and the keys of ``network``
    are said to change the network. A config file may hold the experiment's other sections (they are
    ignored), but a ``network`` key it sets to another value than the card's is an error too: ``network``
    maps a dotted key to (how to read it from the config, the card's value). Returns the loaded config and
    the ``applied`` test-time keys that were given (in the file or by ``--set``) with their values; a
    ``--set`` test key predict does not use is logged as such.
    """
    network = dict(network or {})
    allowed = ", ".join(k + "*" if k.endswith(".") else k for k in test_keys)
    what = f"the carded weights {weights} ({card.model}, {card.num_outputs} {unit})"
    tail = f"only {allowed} settings apply"
    set_keys: list[str] = []
    for override in overrides:
        key = override.split("=", 1)[0].strip()
        if _matches(key, test_keys):
            set_keys.append(key)
        elif key.startswith("model.") or _matches(key, list(network)):
            raise ValueError(f"--set {override}: changes the network of {what}; {tail}")
        else:
            raise ValueError(f"--set {override}: not a predict setting for {what}; {tail}")
    cfg = load_config(cls, config, overrides)
    file_keys = _config_keys(config)
    for key, (read, theirs) in network.items():
        if any(_matches(k, [key]) for k in file_keys):
            mine = read(cfg)
            if _plain(mine) != _plain(theirs):
                raise ValueError(
                    f"--config {config}: {key} {mine!r} changes the network of {what}, which has {theirs!r}; {tail}"
                )
    given: dict[str, Any] = {}
    for key in dict.fromkeys([*file_keys, *set_keys]):
        if key in applied:
            given[key] = _lookup(cfg, key)
        elif key in set_keys:
            log.warning("--set %s: predict does not use this setting (evaluation or training only)", key)
    return cfg, given


def weights_entry(facade: Any, weights: str | Path | None, model: str) -> str:
    """The ``weights`` of a predict's ``results.json``: the file given, or ``"random"`` without one. The
    facade then marks its results as random too, and the console says so once (a facade built from a bare
    name has already said it; one handed a built network, as ``--config`` does, learns it here)."""
    if weights is not None:
        return str(weights)
    if not facade.random_weights:
        facade.random_weights = True
        warn_random_weights(model)
    return RANDOM_WEIGHTS
