"""HRNetV2p as the backbone of torchvision's detectors (Section 6 of the paper).

torchvision's detectors take any module that maps images to an ordered dict of feature maps and says
its ``out_channels``. The HRNet streams (``body``, official key layout, so ImageNet weights load) followed
by the V2p pyramid (``neck``: :class:`hrnet.models.heads.HeadV2p`, the official HRFPN) are exactly that,
so the detectors themselves (RPN, RoI heads, losses, post-processing) stay torchvision's.

Batch norm follows the HRNet detection recipes: ``norm_eval`` keeps the backbone's BN statistics frozen
while training (the affine weights still learn), because 2 images per GPU give useless batch statistics.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from hrnet.models.heads import HeadV2p, v2_concat
from hrnet.models.zoo import create_model

LEVELS = 5  # "same as FPN, we also use 5 levels" (Section 6)


def _init_neck(neck: nn.Module) -> None:
    """The official HRFPN initialisation: Kaiming-normal (a=1) convolutions with zero bias."""
    for m in neck.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, a=1)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def freeze_bn_stats(module: nn.Module) -> None:
    """Put every batch norm below ``module`` in eval mode: running statistics stop updating (``norm_eval``)."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


class HRNetV2pBackbone(nn.Module):
    """HRNet streams (``body``) + the HRNetV2p pyramid (``neck``), returning levels ``"0"`` .. ``"4"``.

    ``conv_stride=1`` gives strides 4..64 (two-stage detectors), ``conv_stride=2`` strides 8..128 (FCOS,
    RetinaNet). ``pretrained`` is passed to :func:`hrnet.create_model` (True: the official ImageNet
    weights; a path: a local classification file).
    """

    def __init__(
        self,
        name: str = "hrnet_w32",
        out_channels: int = 256,
        conv_stride: int = 1,
        pretrained: bool | str | Path = False,
        norm_eval: bool = True,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.body = create_model(name, pretrained=pretrained, features_only=True, **overrides)
        self.neck = HeadV2p(self.body.out_channels, out_channels, num_levels=LEVELS, conv_stride=conv_stride)
        _init_neck(self.neck)
        self.out_channels = out_channels
        self.strides = self.neck.strides
        self.norm_eval = norm_eval

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return OrderedDict((str(i), level) for i, level in enumerate(self.neck(self.body(x))))

    def train(self, mode: bool = True) -> HRNetV2pBackbone:
        super().train(mode)
        if mode and self.norm_eval:
            freeze_bn_stats(self.body)
        return self


class HRNetV2Representation(nn.Module):
    """The HRNetV2 representation alone: all streams upsampled to 1/4 and concatenated (15C channels).

    CenterNet's heads sit on it directly (as FairMOT does on HRNet), so there is no pyramid.
    """

    def __init__(
        self, name: str = "hrnet_w32", pretrained: bool | str | Path = False, norm_eval: bool = False, **overrides: Any
    ) -> None:
        super().__init__()
        self.body = create_model(name, pretrained=pretrained, features_only=True, **overrides)
        self.out_channels = sum(self.body.out_channels)
        self.norm_eval = norm_eval

    def forward(self, x: Tensor) -> Tensor:
        return v2_concat(self.body(x))

    def train(self, mode: bool = True) -> HRNetV2Representation:
        super().train(mode)
        if mode and self.norm_eval:
            freeze_bn_stats(self.body)
        return self
