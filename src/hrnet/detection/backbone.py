"""HRNetV2p as a backbone for torchvision's two-stage detectors (Section 6 of the paper).

torchvision's ``FasterRCNN`` / ``MaskRCNN`` take any module that maps images to an ordered dict of
feature maps and says its ``out_channels``; the HRNet streams followed by the V2p pyramid
(:class:`hrnet.models.heads.HeadV2p`) are exactly that, so the detectors themselves (RPN, RoI heads,
losses, post-processing) are torchvision's, not a copy.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from hrnet.models.heads import HeadV2p
from hrnet.models.zoo import create_model

LEVELS = 5  # strides 4, 8, 16, 32, 64 (first_stride 1), as FPN-based detectors expect


class HRNetV2pBackbone(nn.Module):
    """HRNet streams (``body``, official key layout) + the HRNetV2p pyramid (``neck``)."""

    def __init__(self, name: str = "hrnet_w32", out_channels: int = 256, first_stride: int = 1,
                 pretrained: bool | str | Path = False, **overrides: Any) -> None:
        super().__init__()
        self.body = create_model(name, pretrained=pretrained, features_only=True, **overrides)
        self.neck = HeadV2p(self.body.out_channels, out_channels, num_levels=LEVELS, first_stride=first_stride)
        self.out_channels = out_channels
        self.strides = self.neck.strides

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return OrderedDict((str(i), level) for i, level in enumerate(self.neck(self.body(x))))


def _detector_parts(backbone: HRNetV2pBackbone) -> dict[str, Any]:
    """Anchors one size per level (32..512) and RoI pooling over the four finest levels, as in FPN."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    sizes = tuple((8 * s,) for s in backbone.strides)
    anchors = AnchorGenerator(sizes=sizes, aspect_ratios=((0.5, 1.0, 2.0),) * len(sizes))
    names = [str(i) for i in range(LEVELS - 1)]
    return {"rpn_anchor_generator": anchors,
            "box_roi_pool": MultiScaleRoIAlign(featmap_names=names, output_size=7, sampling_ratio=2),
            "names": names}


def faster_rcnn_hrnet(name: str = "hrnet_w32", num_classes: int = 91, pretrained_backbone: bool | str | Path = False,
                      **detector_kwargs: Any) -> nn.Module:
    """torchvision Faster R-CNN on HRNetV2p-W{x} (e.g. ``hrnet_w32`` for the paper's HRNetV2p-W32)."""
    from torchvision.models.detection import FasterRCNN

    backbone = HRNetV2pBackbone(name, pretrained=pretrained_backbone)
    parts = _detector_parts(backbone)
    parts.pop("names")
    return FasterRCNN(backbone, num_classes=num_classes, **parts, **detector_kwargs)


def mask_rcnn_hrnet(name: str = "hrnet_w32", num_classes: int = 91, pretrained_backbone: bool | str | Path = False,
                    **detector_kwargs: Any) -> nn.Module:
    """torchvision Mask R-CNN on HRNetV2p-W{x}."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.ops import MultiScaleRoIAlign

    backbone = HRNetV2pBackbone(name, pretrained=pretrained_backbone)
    parts = _detector_parts(backbone)
    names = parts.pop("names")
    mask_pool = MultiScaleRoIAlign(featmap_names=names, output_size=14, sampling_ratio=2)
    return MaskRCNN(backbone, num_classes=num_classes, mask_roi_pool=mask_pool, **parts, **detector_kwargs)
