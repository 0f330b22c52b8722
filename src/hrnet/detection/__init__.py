"""Object detection and instance segmentation with HRNetV2p (Section 6, Tables 7-11 and 15).

Builders return torchvision detectors (or ones made of torchvision's parts) on the HRNetV2p pyramid:
Faster / Mask / Cascade / Cascade Mask / Keypoint R-CNN, FCOS, RetinaNet and CenterNet. Data, the
paper's training recipes through the shared engine, COCO evaluation with pycocotools, and loading of the
official HRNet-Object-Detection and mmdet checkpoints live in the submodules.
"""

from hrnet.detection.api import Detector, DetResult
from hrnet.detection.backbone import HRNetV2pBackbone, HRNetV2Representation
from hrnet.detection.checkpoints import convert_state_dict, load_detection_weights
from hrnet.detection.model import (
    build_detector,
    cascademaskrcnn_hrnet,
    cascadercnn_hrnet,
    centernet_hrnet,
    fasterrcnn_hrnet,
    fcos_hrnet,
    keypointrcnn_hrnet,
    list_detectors,
    make_card,
    maskrcnn_hrnet,
    model_from_card,
    retinanet_hrnet,
)

__all__ = [
    "DetResult",
    "Detector",
    "HRNetV2Representation",
    "HRNetV2pBackbone",
    "build_detector",
    "cascademaskrcnn_hrnet",
    "cascadercnn_hrnet",
    "centernet_hrnet",
    "convert_state_dict",
    "fasterrcnn_hrnet",
    "fcos_hrnet",
    "keypointrcnn_hrnet",
    "list_detectors",
    "load_detection_weights",
    "make_card",
    "maskrcnn_hrnet",
    "model_from_card",
    "retinanet_hrnet",
]
