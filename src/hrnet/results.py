"""The one result protocol of every facade: ``PoseResult``, ``SegResult``, ``ClsResult``, ``DetResult``.

A result keeps what it was computed from (the RGB image and, when it came from a file, its path) and
the names of its classes or keypoints, so ``plot()`` needs no arguments, ``save(path)`` writes the
picture (plus any task file, e.g. a label PNG; drawing options are passed on to ``plot``) and
``to_json()`` gives plain JSON-ready data, with ``warnings`` about the result when it has any.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from hrnet.io import save_image

log = logging.getLogger("hrnet")

RANDOM_WEIGHTS = "random"


def warn_random_weights(model: str) -> None:
    """The one console warning of a facade whose network has no trained weights (a bare model name):
    its pictures look convincing and mean nothing."""
    log.warning(
        "random weights: %s has no trained weights; results are meaningless — pass --weights FILE "
        "(Python: weights=FILE), e.g. a carded model_best.safetensors written by hrnet train",
        model,
    )


class Result(ABC):
    """Base of the task results; subclasses are dataclasses with ``image`` and ``path`` fields.

    ``weights`` is :data:`RANDOM_WEIGHTS` when the network that made the result had no trained weights
    (set by the facade; ``to_json`` then says so), else None.
    """

    image: np.ndarray
    path: str | None
    weights: str | None = None

    @abstractmethod
    def plot(self, **options: Any) -> np.ndarray:
        """An RGB uint8 picture of the prediction drawn on a copy of the image; each task names its own
        drawing ``options`` (thresholds, opacity, ...) and gives every one a default."""

    @abstractmethod
    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready data of the prediction (lists, numbers, strings)."""

    def warnings(self) -> list[str]:
        """What the caller should know about this result although it was computed (an input too small
        to mean much, boxes that were dropped); ``to_json`` lists them and the CLI prints them."""
        return []

    def save(self, path: str | Path, **plot_options: Any) -> list[Path]:
        """Write the picture, drawn with ``plot(**plot_options)``, to ``path`` (format from the suffix);
        returns the files written."""
        return [save_image(path, self.plot(**plot_options))]

    def _header(self) -> dict[str, Any]:
        """The fields every ``to_json`` starts with: where the image came from, its size, ``weights``
        ("random" for an untrained network) and the :meth:`warnings` when there are any."""
        h, w = self.image.shape[:2]
        out: dict[str, Any] = {"file": self.path, "width": int(w), "height": int(h)}
        if self.weights is not None:
            out["weights"] = self.weights
        warnings = self.warnings()
        if warnings:
            out["warnings"] = warnings
        return out
