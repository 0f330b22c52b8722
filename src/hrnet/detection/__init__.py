"""Object detection and instance segmentation with HRNetV2p (Section 6, Tables 7-11 and 15).

Builders return torchvision detectors (or ones made of torchvision's parts) on the HRNetV2p pyramid:
Faster / Mask / Cascade / Cascade Mask / Keypoint R-CNN, FCOS, RetinaNet and CenterNet. Data, the
paper's training recipes through the shared engine, COCO evaluation with pycocotools, and loading of the
official HRNet-Object-Detection and mmdet checkpoints live in the submodules.

Names are imported from their submodules on first use (:func:`hrnet.lazy.lazy_package`), so importing
the package, as the task registry does, stays cheap.
"""

from hrnet.lazy import lazy_package

__all__ = lazy_package(
    __name__,
    {
        "hrnet.detection.api": ["Detector", "DetResult"],
        "hrnet.detection.backbone": ["HRNetV2pBackbone", "HRNetV2Representation"],
        "hrnet.detection.checkpoints": ["convert_state_dict", "load_detection_weights"],
        "hrnet.detection.model": [
            "build_detector",
            "cascademaskrcnn_hrnet",
            "cascadercnn_hrnet",
            "centernet_hrnet",
            "convert_checkpoint",
            "fasterrcnn_hrnet",
            "fcos_hrnet",
            "keypointrcnn_hrnet",
            "list_detectors",
            "make_card",
            "maskrcnn_hrnet",
            "model_from_card",
            "retinanet_hrnet",
        ],
    },
)
