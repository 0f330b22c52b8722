"""Training logs: JSON lines (``metrics.jsonl``), an optional TensorBoard writer and a tqdm bar.

Only the main rank writes; other ranks get no-op objects, so the trainer calls them unconditionally.
TensorBoard is an optional extra (``pip install hrnet[tensorboard]``) imported only when enabled.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

log = logging.getLogger("hrnet.engine")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/Inf; keep the line parseable
    return value


class MetricsLogger:
    """Appends one JSON record per call to ``out_dir/metrics.jsonl``; mirrors scalars to TensorBoard."""

    def __init__(self, out_dir: str | Path, enabled: bool = True, tensorboard: bool = False) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self._tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 - optional extra
            except ImportError as exc:
                raise ImportError(
                    "train.tensorboard=true needs the tensorboard package: pip install 'hrnet[tensorboard]'"
                ) from exc
            self._tb = SummaryWriter(log_dir=str(Path(out_dir) / "tensorboard"))

    def log(self, record: dict[str, Any], kind: str = "train") -> None:
        """Write ``{"type": kind, **record}``; numeric values also go to TensorBoard as ``kind/name``."""
        if not self.enabled:
            return
        rec = {"type": kind, **{k: _jsonable(v) for k, v in record.items()}}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
        if self._tb is not None:
            step = int(rec.get("iteration", 0))
            for name, value in rec.items():
                if name not in ("type", "epoch", "iteration") and isinstance(value, int | float):
                    self._tb.add_scalar(f"{kind}/{name}", value, step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class Progress:
    """A tqdm bar over one epoch's optimizer steps with loss and images/s in the postfix (main rank only)."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool) -> None:
        self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, leave=False) if enabled else None
        self._t0 = time.perf_counter()
        self._images = 0

    def update(self, images: int, loss: float) -> float:
        """Advance one step; returns the images/s measured since the bar started."""
        self._images += images
        rate = self._images / max(time.perf_counter() - self._t0, 1e-9)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4g}", img_s=f"{rate:.1f}", refresh=False)
        return rate

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
