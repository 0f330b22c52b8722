"""Human pose estimation with HRNetV1 (Section 4 of the paper): top-down, heatmaps at 1/4 resolution.

``PoseEstimator`` is the Python face of ``hrnet pose predict``; ``train`` / ``evaluate`` are
``hrnet pose train`` / ``hrnet pose eval``. Imports are lazy so that ``import hrnet.pose`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "PoseEstimator": "hrnet.pose.api",
    "PoseResult": "hrnet.pose.api",
    "KeypointSet": "hrnet.pose.keypoints",
    "COCO_KEYPOINTS": "hrnet.pose.keypoints",
    "MPII_KEYPOINTS": "hrnet.pose.keypoints",
    "load_keypoint_set": "hrnet.pose.keypoints",
    "PoseConfig": "hrnet.pose.config",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hrnet.pose' has no attribute {name!r}")
