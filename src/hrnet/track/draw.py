"""One stable colour per track ID (or class label) and the ID drawn beside its box."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np


def distinct_colour(index: int) -> tuple[int, int, int]:
    """An RGB colour for ``index`` that stays the same across frames and runs, with neighbouring indices
    far apart in hue (golden-ratio steps)."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.75, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_labelled_box(canvas: np.ndarray, box: np.ndarray, text: str, colour: tuple[int, int, int]) -> None:
    """A box (x1, y1, x2, y2) in ``colour`` with ``text`` on a filled tab above it, drawn in place; line and
    text sizes follow the picture's size."""
    scale = max(0.4, min(canvas.shape[:2]) / 600)
    thick = max(1, int(round(2 * scale)))
    x1, y1, x2, y2 = (int(round(float(v))) for v in box[:4])
    cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thick, cv2.LINE_AA)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)
    top = max(0, y1 - th - base - 2)
    cv2.rectangle(canvas, (x1, top), (x1 + tw + 2, top + th + base + 2), colour, -1)
    cv2.putText(canvas, text, (x1 + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (0, 0, 0), 1, cv2.LINE_AA)
