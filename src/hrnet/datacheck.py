"""The data check report every task shares: problems counted per kind, a table for people, JSON for machines.

Each task's ``check`` module walks its dataset and calls :meth:`DataReport.add` once per problem, naming
the file (and annotation) at fault. ``hrnet <task> check-data`` prints :meth:`DataReport.table` (or the
JSON of :meth:`DataReport.to_dict` with ``--json``) and exits 1 when there is an error; training runs the
same check first and logs its summary, so a bad dataset is reported before the first epoch, not after it.

Severities: ``error`` (the data is wrong: training or evaluation would fail or learn from misaligned
labels), ``warning`` (probably unintended, and skipped or clipped: a keypoint outside its image, an empty
image), ``note`` (handled without loss, e.g. an ``area`` filled in).
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hrnet.cli_common import add_json_option, add_run_options, emit_json

SEVERITIES = ("error", "warning", "note")
EXAMPLES_KEPT = 50  # per kind, in memory and in the JSON (counts are always complete)


@dataclass
class Finding:
    """One problem: its kind (the table row), severity, where (file / annotation) and what is wrong."""

    kind: str
    severity: str
    where: str
    message: str

    def line(self) -> str:
        return f"{self.where}: {self.message}" if self.message else self.where


@dataclass
class DataReport:
    """Problems found in a task's data, counted per kind (see the module docstring)."""

    task: str
    sources: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    severity: dict[str, str] = field(default_factory=dict)
    examples: dict[str, list[Finding]] = field(default_factory=dict)
    checked: Counter[str] = field(default_factory=Counter)  # what was looked at: images, annotations, ...

    def add(self, kind: str, where: str, message: str = "", severity: str = "error") -> None:
        """Record one problem of ``kind`` at ``where`` (a path, plus annotation id when there is one)."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
        self.counts[kind] += 1
        old = self.severity.get(kind)
        if old is None or SEVERITIES.index(severity) < SEVERITIES.index(old):
            self.severity[kind] = severity
        kept = self.examples.setdefault(kind, [])
        if len(kept) < EXAMPLES_KEPT:
            kept.append(Finding(kind, severity, where, message))

    def count(self, severity: str) -> int:
        """How many problems of ``severity`` were found."""
        return sum(n for kind, n in self.counts.items() if self.severity[kind] == severity)

    @property
    def ok(self) -> bool:
        """No errors (warnings and notes allowed)."""
        return self.count("error") == 0

    def _rows(self) -> list[tuple[str, str, int]]:
        order = {s: i for i, s in enumerate(SEVERITIES)}
        return sorted(((k, self.severity[k], n) for k, n in self.counts.items()), key=lambda r: (order[r[1]], r[0]))

    def summary(self) -> str:
        """One line: what was checked and how many errors / warnings / notes."""
        looked = ", ".join(f"{n} {what}" for what, n in self.checked.items())
        found = ", ".join(f"{self.count(s)} {s}{'s' if self.count(s) != 1 else ''}" for s in SEVERITIES)
        return f"{self.task} data check ({looked or 'nothing checked'}): {found}"

    def table(self, examples: int = 3) -> str:
        """The counts per problem as a text table, then up to ``examples`` findings per problem."""
        lines = [self.summary()]
        rows = self._rows()
        if not rows:
            return "\n".join([*lines, "no problems found"])
        width = max(len("problem"), *(len(k) for k, _, _ in rows))
        lines.append(f"  {'problem':<{width}}  {'severity':<8}  {'count':>7}")
        lines += [f"  {k:<{width}}  {s:<8}  {n:>7}" for k, s, n in rows]
        if examples > 0:
            for kind, _, n in rows:
                shown = self.examples[kind][:examples]
                lines.append(f"{kind} ({n}):")
                lines += [f"  {f.line()}" for f in shown]
                if n > len(shown):
                    lines.append(f"  ... and {n - len(shown)} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: task, sources, what was checked, totals, and per problem its severity, count and
        the first findings (up to 50)."""
        return {
            "task": self.task,
            "sources": list(self.sources),
            "checked": dict(self.checked),
            "ok": self.ok,
            "errors": self.count("error"),
            "warnings": self.count("warning"),
            "notes": self.count("note"),
            "problems": [
                {
                    "kind": k,
                    "severity": s,
                    "count": n,
                    "examples": [{"where": f.where, "message": f.message} for f in self.examples[k]],
                }
                for k, s, n in self._rows()
            ],
        }

    def log_summary(self, logger: logging.Logger, command: str = "check-data") -> None:
        """What training prints before it starts: the summary line, and the table when something was found."""
        if not self.counts:
            logger.info("%s", self.summary())
            return
        level = logging.WARNING if self.count("error") or self.count("warning") else logging.INFO
        logger.log(level, "%s\n(run `%s` for the full list)", self.table(examples=1), command)


def add_check_data_verb(
    sub: argparse._SubParsersAction, *, task: str, func: Any, example_config: str, what: str
) -> argparse.ArgumentParser:
    """The ``check-data`` verb, the same for every task: ``--config``, ``--quick``, ``--json [OUT]``,
    ``--examples N`` and ``--set`` / ``--debug``. ``func(args) -> int`` returns 0 (no errors) or 1."""

    p = sub.add_parser(
        "check-data",
        help=f"check the {task} dataset of a config: {what}",
        description=f"Check the training and validation data of a {task} config: {what}. Prints a "
        "table of problem counts with examples naming the file and annotation; exit "
        "status 1 when an error is found. Training runs the quick form of this check.",
    )
    p.add_argument("--config", required=True, help=f"experiment YAML, e.g. {example_config}")
    p.add_argument(
        "--quick",
        action="store_true",
        help="read image headers only (sizes), do not decode every image (what training runs)",
    )
    p.add_argument("--examples", type=int, default=5, metavar="N", help="findings listed per problem (default 5)")
    add_json_option(p, "the report")
    add_run_options(p, "data.root=/data/mine")
    p.set_defaults(func=func)
    return p


def finish_check(report: DataReport, args: argparse.Namespace) -> int:
    """Print the report as ``check-data`` asked (table, or JSON with ``--json``) and return the exit status."""

    if getattr(args, "json", None) is not None:
        emit_json(report.to_dict(), args.json)
    if getattr(args, "json", None) != "-":
        print(report.table(examples=max(0, args.examples)))
    return 0 if report.ok else 1
