"""Semantic segmentation with HRNetV2 (paper Section 5): Cityscapes, PASCAL-Context, LIP and folders.

``Segmenter`` is the Python API; ``hrnet seg train|eval|predict`` the command line (``cli.py``).

Names are imported from their submodules on first use (:func:`hrnet.lazy.lazy_package`), so importing
the package, as the task registry does, stays cheap.
"""

from hrnet.lazy import lazy_package

__all__ = lazy_package(
    __name__,
    {
        "hrnet.segmentation.api": ["Segmenter", "SegResult"],
        "hrnet.segmentation.metrics": ["SegMetric", "confusion_matrix", "scores_from_confusion"],
    },
)
