"""Representation heads (Section 3.3, Fig. 4, Section 7, Appendix A) on the list of stream outputs.

- V1:  the high-resolution stream only (pose estimation).
- V1h: V1 plus a 1x1 conv to the width of V2 (Section 7's control experiment).
- V2:  all streams bilinearly upsampled to the highest resolution and concatenated (+ optional 1x1 conv);
       the segmentation and facial-landmark heads put 1x1 conv + BN + ReLU + 1x1 conv on it.
- V2p: V2 followed by a pyramid made by downsampling (detection; layout of mmdet's HRFPN).
- C:   Fig. 11: bottlenecks per stream to 128/256/512/1024, strided-conv aggregation to the lowest
       resolution, 1x1 conv to 2048 and global pooling.
- Ci:  per-stream global pooling, concatenated (15C dimensions).
- Cii: per-stream stride-2 bottleneck units, doubling the width each time until 512 at 1/64,
       concatenated to 2048 and pooled.

Each head's layers are built by a ``build_*`` function and applied by a ``*_forward`` function, so a
task model can own the layers directly (flat, official state-dict keys) while standalone modules
(``HeadV2p``, ``HeadC``, ...) reuse the same code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hrnet.models.blocks import Bottleneck, conv3x3, interpolate_to, make_units

CLS_HEAD_CHANNELS = (32, 64, 128, 256)  # bottleneck planes per stream; x4 gives 128, 256, 512, 1024


def v2_concat(xs: Sequence[Tensor], align_corners: bool | None = False) -> Tensor:
    """HRNetV2 representation: upsample every stream (bilinear) to the first one and concatenate."""
    size = xs[0].shape[-2:]
    return torch.cat([xs[0]] + [interpolate_to(x, size, "bilinear", align_corners) for x in xs[1:]], dim=1)


def build_v2_mix_head(in_ch: int, num_outputs: int, bn_momentum: float = 0.1) -> nn.Sequential:
    """1x1 conv (with bias) + BN + ReLU mixing the concatenated streams, then a 1x1 conv to the outputs.

    The official segmentation head (``last_layer``: one logit map per class) and the official facial
    landmark head (``head``: one heatmap per landmark) are this same stack; the layer indices 0, 1, 3 are
    the key names of both repositories' checkpoints."""
    return nn.Sequential(
        nn.Conv2d(in_ch, in_ch, kernel_size=1),
        nn.BatchNorm2d(in_ch, momentum=bn_momentum),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_ch, num_outputs, kernel_size=1),
    )


def build_seg_last_layer(in_ch: int, num_classes: int, bn_momentum: float = 0.1) -> nn.Sequential:
    """The official segmentation head on V2: 1x1 conv + BN + ReLU mixing, then a 1x1 classifier."""
    return build_v2_mix_head(in_ch, num_classes, bn_momentum)


# ---- classification head C (Fig. 11) ---------------------------------------------------------------
def build_head_c(in_channels: Sequence[int], bn_momentum: float = 0.1) -> dict[str, nn.Module]:
    """Layers of the Wx-C head: ``incre_modules``, ``downsamp_modules``, ``final_layer``."""
    incre = nn.ModuleList(
        make_units(Bottleneck, c, p, 1, bn_momentum=bn_momentum) for c, p in zip(in_channels, CLS_HEAD_CHANNELS)
    )
    widths = [p * Bottleneck.expansion for p in CLS_HEAD_CHANNELS]
    down = nn.ModuleList(
        nn.Sequential(
            conv3x3(widths[i], widths[i + 1], stride=2, bias=True),
            nn.BatchNorm2d(widths[i + 1], momentum=bn_momentum),
            nn.ReLU(inplace=True),
        )
        for i in range(len(in_channels) - 1)
    )
    final = nn.Sequential(
        nn.Conv2d(widths[len(in_channels) - 1], 2048, kernel_size=1),
        nn.BatchNorm2d(2048, momentum=bn_momentum),
        nn.ReLU(inplace=True),
    )
    return {"incre_modules": incre, "downsamp_modules": down, "final_layer": final}


def head_c_forward(incre: nn.ModuleList, down: nn.ModuleList, final: nn.Module, xs: Sequence[Tensor]) -> Tensor:
    """Aggregate high to low with strided convs, then 1x1 to 2048 and global average pooling."""
    y = incre[0](xs[0])
    for i in range(1, len(xs)):
        y = incre[i](xs[i]) + down[i - 1](y)
    return final(y).mean(dim=(2, 3))


# ---- alternatives of Table 14 ----------------------------------------------------------------------
def head_ci_forward(xs: Sequence[Tensor]) -> Tensor:
    """Ci: global average pooling of every stream, concatenated (15C dimensions)."""
    return torch.cat([x.mean(dim=(2, 3)) for x in xs], dim=1)


def build_head_cii(in_channels: Sequence[int], out_width: int = 512, bn_momentum: float = 0.1) -> nn.ModuleList:
    """Cii: stream i gets (4 - i) stride-2 bottleneck units whose output widths double up to ``out_width``.

    Our reading of Appendix A: all streams end at 1/64 resolution with 512 channels, so the
    concatenation is 2048-dimensional before pooling.
    """
    n = len(in_channels)
    stacks = []
    for i, c in enumerate(in_channels):
        units, c_in = [], c
        for k in range(n - i):
            c_out = out_width // 2 ** (n - i - 1 - k)
            units.append(
                make_units(Bottleneck, c_in, c_out // Bottleneck.expansion, 1, stride=2, bn_momentum=bn_momentum)[0]
            )
            c_in = c_out
        stacks.append(nn.Sequential(*units))
    return nn.ModuleList(stacks)


def head_cii_forward(stacks: nn.ModuleList, xs: Sequence[Tensor]) -> Tensor:
    """Run each stream's stack; concatenate at the common (lowest) resolution and pool."""
    ys = [stack(x) for stack, x in zip(stacks, xs)]
    size = ys[-1].shape[-2:]
    ys = [interpolate_to(y, size, "nearest", None) for y in ys]  # equal already unless sizes are odd
    return torch.cat(ys, dim=1).mean(dim=(2, 3))


# ---- standalone representation heads (features, detection, experiments) -----------------------------
class HeadV1(nn.Module):
    """HRNetV1: the high-resolution stream alone."""

    def __init__(self, in_channels: Sequence[int]) -> None:
        super().__init__()
        self.out_channels = in_channels[0]

    def forward(self, xs: Sequence[Tensor]) -> Tensor:
        return xs[0]


class HeadV1h(nn.Module):
    """HRNetV1h: V1 + 1x1 conv (BN, ReLU) to the V2 width, so V1 and V2 compare at equal width."""

    def __init__(self, in_channels: Sequence[int], bn_momentum: float = 0.1) -> None:
        super().__init__()
        self.out_channels = sum(in_channels)
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels[0], self.out_channels, 1, bias=False),
            nn.BatchNorm2d(self.out_channels, momentum=bn_momentum),
            nn.ReLU(inplace=True),
        )

    def forward(self, xs: Sequence[Tensor]) -> Tensor:
        return self.conv(xs[0])


class HeadV2(nn.Module):
    """HRNetV2: upsample + concatenate all streams, then (optionally) a 1x1 conv to mix them."""

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int | None = None,
        align_corners: bool = False,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        total = sum(in_channels)
        self.out_channels = out_channels or total
        self.align_corners = align_corners
        self.mix = (
            nn.Sequential(
                nn.Conv2d(total, self.out_channels, 1, bias=False),
                nn.BatchNorm2d(self.out_channels, momentum=bn_momentum),
                nn.ReLU(inplace=True),
            )
            if out_channels
            else nn.Identity()
        )

    def forward(self, xs: Sequence[Tensor]) -> Tensor:
        return self.mix(v2_concat(xs, self.align_corners))


class HeadV2p(nn.Module):
    """HRNetV2p: V2, a 1x1 reduction, then ``num_levels`` levels by average pooling and a 3x3 conv each.

    As the official HRFPN (HRNet-Object-Detection, mmdet): level i average-pools the reduced 1/4
    representation by ``2**i`` (floor rounding), then a 3x3 conv of stride ``conv_stride``. With the
    default ``conv_stride=1`` the strides are 4..64 (Faster / Mask / Cascade R-CNN); ``conv_stride=2``
    gives 8..128, the P3-P7 pyramid of FCOS / RetinaNet (mmdet ``HRFPN(stride=2)``, HRNet-FCOS).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int = 256,
        num_levels: int = 5,
        conv_stride: int = 1,
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        if conv_stride not in (1, 2):
            raise ValueError(f"conv_stride must be 1 or 2, got {conv_stride}")
        self.align_corners = align_corners
        self.out_channels = out_channels
        self.strides = [4 * conv_stride * 2**i for i in range(num_levels)]
        self.pools = [2**i for i in range(num_levels)]
        self.reduction_conv = nn.Conv2d(sum(in_channels), out_channels, kernel_size=1)
        self.fpn_convs = nn.ModuleList(
            conv3x3(out_channels, out_channels, stride=conv_stride, bias=True) for _ in range(num_levels)
        )

    def forward(self, xs: Sequence[Tensor]) -> list[Tensor]:
        y = self.reduction_conv(v2_concat(xs, self.align_corners))
        levels = [y if k == 1 else nn.functional.avg_pool2d(y, kernel_size=k, stride=k) for k in self.pools]
        return [conv(level) for conv, level in zip(self.fpn_convs, levels)]


class HeadC(nn.Module):
    """The Wx-C classification representation (2048-d vector), usable on any stream list."""

    def __init__(self, in_channels: Sequence[int], bn_momentum: float = 0.1) -> None:
        super().__init__()
        for name, module in build_head_c(in_channels, bn_momentum).items():
            self.add_module(name, module)
        self.out_channels = 2048

    def forward(self, xs: Sequence[Tensor]) -> Tensor:
        return head_c_forward(self.incre_modules, self.downsamp_modules, self.final_layer, xs)
