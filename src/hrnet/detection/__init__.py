"""Object detection / instance segmentation with HRNetV2p (Section 6): backbones for torchvision's detectors.

Model building only for now: ``faster_rcnn_hrnet`` / ``mask_rcnn_hrnet`` return torchvision detectors
that train and predict with torchvision's own API; there is no detection config, CLI or COCO box/mask
evaluation in this package yet.
"""

from hrnet.detection.backbone import HRNetV2pBackbone, faster_rcnn_hrnet, mask_rcnn_hrnet

__all__ = ["HRNetV2pBackbone", "faster_rcnn_hrnet", "mask_rcnn_hrnet"]
