"""Residual units used by every stream: the basic unit (two 3x3 convs) and the bottleneck.

Attribute names (``conv1``, ``bn1``, ..., ``downsample.0/1``) follow torchvision's ResNet and the official
HRNet code, so official checkpoints load without renaming.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    """3x3 convolution with padding 1 (the only spatial kernel HRNet uses)."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=bias)


def conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int, bn_momentum: float, relu: bool) -> nn.Sequential:
    """Conv (no bias) + BN (+ ReLU): the building brick of transitions and fusions."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel_size=kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch, momentum=bn_momentum),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity shortcut; the paper's unit for streams in stages 2-4."""

    expansion = 1

    def __init__(
        self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, bn_momentum: float = 0.1
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes, momentum=bn_momentum)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes, momentum=bn_momentum)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        y += shortcut  # in place: y is a fresh tensor that BN's backward does not need
        return self.relu(y)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4); used in stage 1 and in the classification head."""

    expansion = 4

    def __init__(
        self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, bn_momentum: float = 0.1
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=bn_momentum)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes, momentum=bn_momentum)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=bn_momentum)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        y += shortcut
        return self.relu(y)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


def make_units(
    block: type[BasicBlock] | type[Bottleneck],
    in_ch: int,
    planes: int,
    num: int,
    stride: int = 1,
    bn_momentum: float = 0.1,
) -> nn.Sequential:
    """``num`` residual units; the first gets a 1x1 projection shortcut when the shape changes."""
    out_ch = planes * block.expansion
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(out_ch, momentum=bn_momentum),
        )
    units = [block(in_ch, planes, stride, downsample, bn_momentum)]
    units += [block(out_ch, planes, 1, None, bn_momentum) for _ in range(num - 1)]
    return nn.Sequential(*units)


def interpolate_to(x: Tensor, size: torch.Size | tuple[int, int], mode: str, align_corners: bool | None) -> Tensor:
    """Resize ``x`` to ``size``; resizing to a size (not a factor) is what lets any input size work."""
    if x.shape[-2:] == tuple(size):
        return x
    if mode == "nearest":
        return nn.functional.interpolate(x, size=size, mode="nearest")
    return nn.functional.interpolate(x, size=size, mode=mode, align_corners=align_corners)
