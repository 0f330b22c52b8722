"""Semantic segmentation with HRNetV2 (paper Section 5): Cityscapes, PASCAL-Context, LIP and folders.

``Segmenter`` is the Python API; ``hrnet seg train|eval|predict`` the command line (``cli.py``).
"""

from hrnet.segmentation.api import Segmenter, SegResult
from hrnet.segmentation.metrics import SegMetric, confusion_matrix, scores_from_confusion

__all__ = ["Segmenter", "SegResult", "SegMetric", "confusion_matrix", "scores_from_confusion"]
