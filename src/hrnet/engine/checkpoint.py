"""Crash-safe checkpoints and RNG state capture.

``save_checkpoint`` writes a temp file in the target folder and ``os.replace``s it, so a crash or a full
disk mid-write leaves the previous checkpoint intact. ``load_checkpoint`` only uses
``torch.load(weights_only=True)``, so every stored value is a tensor or plain Python data (the RNG states
of numpy and ``random`` are converted to tensors / lists for that reason).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrnet.atomic import atomic_path


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read (corrupt, truncated, or not a checkpoint)."""


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write ``state`` with ``torch.save`` atomically: temp file, fsync, then ``os.replace`` over ``path``."""
    with atomic_path(path, fsync=True) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises FileNotFoundError for a missing file and :class:`CheckpointError` (a ValueError) naming the file
    when it is corrupt, truncated or holds something other than a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError / UnpicklingError / EOFError / zipfile errors
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch checkpoint: {exc}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict")
    return state


# ----------------------------------------------------------------------------------------------------
# RNG states in a weights_only-safe form


def get_rng_state() -> dict:
    """Capture torch (CPU and CUDA), numpy and ``random`` generator states as tensors and plain data."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_version),
            "internal": torch.tensor(py_internal, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the generator states captured by :func:`get_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    npst = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            npst["keys"].cpu().numpy().astype(np.uint32),
            int(npst["pos"]),
            int(npst["has_gauss"]),
            float(npst["cached_gaussian"]),
        )
    )
    pyst = state["python"]
    random.setstate((int(pyst["version"]), tuple(int(v) for v in pyst["internal"].tolist()), pyst["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
