"""Pictures of label maps: palette PNGs, colour overlays and a legend of the classes shown.

A label PNG is written as a palette ("P") image whose pixel values are the class indices (255 = ignored
or unknown, drawn black), so it is both a valid label file for :func:`read_label` and viewable in colour.
Files are written atomically (temporary file + ``os.replace``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from hrnet.atomic import atomic_path


def colorize(labels: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) RGB uint8; indices without a colour are black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(palette)] = np.asarray(palette, dtype=np.uint8)[:256]
    return lut[np.clip(labels, 0, 255).astype(np.uint8)]


def _atomic_save(image: Image.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp)


def save_label_png(labels: np.ndarray, path: str | Path, palette: Sequence[Sequence[int]]) -> Path:
    """Write class indices as a palette PNG (values = classes, colours = ``palette``)."""
    path = Path(path)
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 255:
        raise ValueError(f"{path}: label values must lie in 0..255 to be stored in an 8-bit PNG")
    im = Image.fromarray(labels.astype(np.uint8), mode="P")
    flat = np.zeros((256, 3), dtype=np.uint8)
    flat[: len(palette)] = np.asarray(palette, dtype=np.uint8)[:256]
    im.putpalette(flat.reshape(-1).tolist())
    _atomic_save(im, path)
    return path


def overlay(
    image: np.ndarray,
    labels: np.ndarray,
    palette: Sequence[Sequence[int]],
    class_names: Sequence[str] | None = None,
    alpha: float = 0.5,
    legend: bool = True,
) -> np.ndarray:
    """Blend the colour-coded labels over the RGB image; append a legend of the classes present."""
    colours = colorize(labels, palette)
    valid = (labels >= 0) & (labels < len(palette))
    out = image.astype(np.float32)
    out[valid] = (1 - alpha) * out[valid] + alpha * colours[valid].astype(np.float32)
    out = out.round().astype(np.uint8)
    if legend and class_names is not None:
        present = [int(c) for c in np.unique(labels) if 0 <= c < len(class_names)]
        out = np.concatenate([out, _legend(present, class_names, palette, out.shape[0])], axis=1)
    return out


def _legend(classes: list[int], names: Sequence[str], palette: Sequence[Sequence[int]], height: int) -> np.ndarray:
    """A white panel listing ``classes`` with colour swatches, as tall as the image (columns wrap)."""
    row = 18
    per_col = max(1, (height - 6) // row)
    n_cols = max(1, -(-len(classes) // per_col))
    col_w = 12 + 8 * max((len(names[c]) for c in classes), default=4) + 30
    panel = np.full((height, col_w * n_cols, 3), 255, dtype=np.uint8)
    for i, c in enumerate(classes):
        x0 = (i // per_col) * col_w + 6
        y0 = (i % per_col) * row + 4
        colour = tuple(int(v) for v in palette[c])
        cv2.rectangle(panel, (x0, y0), (x0 + 14, y0 + 12), colour, thickness=-1)
        cv2.rectangle(panel, (x0, y0), (x0 + 14, y0 + 12), (0, 0, 0), thickness=1)
        cv2.putText(panel, str(names[c]), (x0 + 20, y0 + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return panel
