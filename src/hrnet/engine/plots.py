"""Training curves of any run: the engine's ``metrics.jsonl`` drawn to a PNG.

Records of type ``train`` / ``epoch`` give the loss, ``eval`` the held-out metrics; matplotlib's Agg
canvas is used directly (no pyplot), so it works on machines without a display and keeps no global
backend state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from hrnet.atomic import atomic_path


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metrics log not found")
    records = []
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{no}: not a JSON line ({err.msg})") from err
        if isinstance(rec, dict):
            records.append(rec)
    return records


def _series(records: list[dict], kind: str, key: str, x: str = "iteration") -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in records:
        numeric = isinstance(r.get(key), int | float) and isinstance(r.get(x), int | float)
        if r.get("type") == kind and numeric:
            xs.append(float(r[x]))
            ys.append(float(r[key]))
    return xs, ys


def plot_metrics(
    jsonl_path: str | Path, out_png: str | Path, metrics: Sequence[str] = ("AP", "AP50", "AP75", "AR")
) -> Path:
    """Draw the loss (per logged step and per epoch) and the evaluation ``metrics`` of a run to a PNG."""

    path = Path(jsonl_path)
    records = _read_jsonl(path)
    fig = Figure(figsize=(10, 4), dpi=100)
    ax_loss, ax_metric = fig.subplots(1, 2)
    xs, ys = _series(records, "train", "loss")
    if xs:
        ax_loss.plot(xs, ys, lw=1, alpha=0.6, label="loss (logged steps)")
    xs, ys = _series(records, "epoch", "loss")
    if xs:
        ax_loss.plot(xs, ys, "o-", lw=2, label="loss (epoch mean)")
    if ax_loss.lines:
        ax_loss.set_yscale("log")
        ax_loss.legend()
    else:
        ax_loss.text(0.5, 0.5, "no loss records", ha="center", va="center", transform=ax_loss.transAxes)
    ax_loss.set_xlabel("iteration")
    ax_loss.set_title("training loss")
    for name in metrics:
        xs, ys = _series(records, "eval", name, x="epoch")
        if xs:
            ax_metric.plot(xs, ys, "o-", label=name)
    if ax_metric.lines:
        ax_metric.legend()
        ax_metric.set_ylim(0, 1)
    else:
        ax_metric.text(0.5, 0.5, "no evaluation records", ha="center", va="center", transform=ax_metric.transAxes)
    ax_metric.set_xlabel("epoch")
    ax_metric.set_title("held-out metrics")
    fig.tight_layout()
    out = Path(out_png)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    return out
