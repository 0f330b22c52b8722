"""The one result protocol of every facade: ``PoseResult``, ``SegResult``, ``ClsResult``, ``DetResult``.

A result keeps what it was computed from (the RGB image and, when it came from a file, its path) and
the names of its classes or keypoints, so ``plot()`` needs no arguments, ``save(path)`` writes the
picture (plus any task file, e.g. a label PNG) and ``to_json()`` gives plain JSON-ready data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from hrnet.io import save_image


class Result(ABC):
    """Base of the task results; subclasses are dataclasses with ``image`` and ``path`` fields."""

    image: np.ndarray
    path: str | None

    @abstractmethod
    def plot(self) -> np.ndarray:
        """An RGB uint8 picture of the prediction drawn on a copy of the image."""

    @abstractmethod
    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready data of the prediction (lists, numbers, strings)."""

    def save(self, path: str | Path) -> list[Path]:
        """Write the picture to ``path`` (format from the suffix); returns the files written."""
        return [save_image(path, self.plot())]

    def _header(self) -> dict[str, Any]:
        """The fields every ``to_json`` starts with: where the image came from and its size."""
        h, w = self.image.shape[:2]
        return {"file": self.path, "width": int(w), "height": int(h)}
