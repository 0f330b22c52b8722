"""How a config's data paths are read: relative ones under ``data.root``, absolute ones as given."""

from __future__ import annotations

from pathlib import Path


def under_root(root: str | Path, path: str | Path) -> Path:
    """``path`` when it is absolute, else ``root / path``: one rule for annotation files, image folders
    and box files named in a config, so training, evaluation and ``check-data`` read the same files."""
    p = Path(path)
    return p if p.is_absolute() else Path(root) / p
