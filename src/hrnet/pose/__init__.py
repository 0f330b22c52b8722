"""Human pose estimation with HRNetV1 (Section 4 of the paper): top-down, heatmaps at 1/4 resolution.

``PoseEstimator`` is the Python face of ``hrnet pose predict``; ``train`` / ``evaluate`` are
``hrnet pose train`` / ``hrnet pose eval``.

Names are imported from their submodules on first use (:func:`hrnet.lazy.lazy_package`), so importing
the package, as the task registry does, stays cheap.
"""

from hrnet.lazy import lazy_package

__all__ = lazy_package(
    __name__,
    {
        "hrnet.pose.api": ["PoseEstimator", "PoseResult"],
        "hrnet.pose.keypoints": ["KeypointSet", "COCO_KEYPOINTS", "MPII_KEYPOINTS", "load_keypoint_set"],
        "hrnet.pose.config": ["PoseConfig"],
    },
)
