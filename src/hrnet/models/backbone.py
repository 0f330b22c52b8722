"""The HRNet backbone: stem, stage 1, and stages 2-4 of parallel streams with repeated fusions.

One implementation serves every task (Section 3 of the paper). A stage is a list of
multi-resolution modules; each module runs its streams ("branches") in parallel and then fuses
them: every output stream is the sum of all input streams brought to its resolution (strided 3x3
convs going down, 1x1 conv + upsampling going up). Module and attribute names follow the
official code (``transition1``, ``stage2.0.branches.1.3.conv1``, ``stage3.2.fuse_layers.2.0.1.0``)
so that official, timm, mmpose and mmseg checkpoints load with no conversion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from torch import Tensor, nn

from hrnet.models.blocks import BLOCKS, Bottleneck, conv_bn, interpolate_to, make_units

FUSION_SCHEMES = ("full", "across", "final")


@dataclass(frozen=True)
class HRNetConfig:
    """Everything that fixes the topology. A width W gives the stream widths (W, 2W, 4W, 8W).

    ``branch_channels`` are the inner widths (planes) of the residual units of each stream; they are
    derived from ``width`` unless given. ``fusion`` reproduces the paper's Table 12: ``full`` fuses
    after every module (8 fusions for the standard net), ``across`` only at the end of each stage (3),
    ``final`` only before the head (1). ``parallel_from_start`` is Section 7's "resolution
    maintenance" variant: all four streams start after stage 1 and have the same depth.
    """

    width: int
    stem_width: int = 64
    stage1_blocks: int = 4
    stage1_channels: int = 64
    stage_modules: tuple[int, int, int] = (1, 4, 3)
    stage_blocks: tuple[int, int, int] = (4, 4, 4)
    branch_block: str = "basic"
    fusion: str = "full"
    parallel_from_start: bool = False
    upsample: str = "nearest"
    align_corners: bool | None = None
    bn_momentum: float = 0.1
    multi_scale_output: bool = True
    branch_channels: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.width, int) or self.width <= 0:
            raise ValueError(f"width must be a positive integer, got {self.width!r}")
        if self.branch_block not in BLOCKS:
            raise ValueError(f"branch_block must be one of {sorted(BLOCKS)}, got {self.branch_block!r}")
        if self.fusion not in FUSION_SCHEMES:
            raise ValueError(f"fusion must be one of {FUSION_SCHEMES}, got {self.fusion!r}")
        if self.upsample not in ("nearest", "bilinear"):
            raise ValueError(f"upsample must be 'nearest' or 'bilinear', got {self.upsample!r}")
        if len(self.stage_modules) != 3 or len(self.stage_blocks) != 3:
            raise ValueError("stage_modules and stage_blocks give one number for each of stages 2, 3, 4")
        if min(self.stage_modules) < 1 or min(self.stage_blocks) < 1 or self.stage1_blocks < 1:
            raise ValueError("every stage needs at least one module and one residual unit")
        if not self.branch_channels:
            # a bottleneck stream of width W has W/4 inner planes (so the paper's "W44" bottleneck net has
            # streams of 44, 88, 176, 352 channels, Table 13)
            expansion = BLOCKS[self.branch_block].expansion
            if self.width % expansion:
                raise ValueError(
                    f"with {self.branch_block} units the width must be a multiple of {expansion}, got {self.width}"
                )
            planes = self.width // expansion
            object.__setattr__(self, "branch_channels", tuple(planes * 2**i for i in range(4)))
        if self.upsample == "bilinear" and self.align_corners is None:
            object.__setattr__(self, "align_corners", False)

    def with_overrides(self, **overrides) -> HRNetConfig:
        """A copy with some fields changed; ``branch_channels`` is re-derived when the width changes."""
        if ("width" in overrides or "branch_block" in overrides) and "branch_channels" not in overrides:
            overrides["branch_channels"] = ()
        for key in ("stage_modules", "stage_blocks", "branch_channels"):
            if key in overrides:
                value = overrides[key]
                overrides[key] = tuple(value) if isinstance(value, Sequence) else (int(value),) * 3
        return replace(self, **overrides)


class MultiResolutionModule(nn.Module):
    """Parallel streams (``branches``) followed by an optional all-to-all fusion (``fuse_layers``)."""

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: Sequence[int],
        num_blocks: int,
        block: str,
        fuse: bool,
        multi_scale_output: bool,
        upsample: str,
        align_corners: bool | None,
        bn_momentum: float,
    ) -> None:
        super().__init__()
        unit = BLOCKS[block]
        self.branches = nn.ModuleList(
            make_units(unit, c_in, c, num_blocks, bn_momentum=bn_momentum) for c_in, c in zip(in_channels, channels)
        )
        self.out_channels = [c * unit.expansion for c in channels]
        self.upsample, self.align_corners = upsample, align_corners
        self.fuse_layers: nn.ModuleList | None = None
        if fuse and len(channels) > 1:
            n_out = len(channels) if multi_scale_output else 1
            self.fuse_layers = nn.ModuleList(
                nn.ModuleList(self._fuse_path(j, i, bn_momentum) for j in range(len(channels))) for i in range(n_out)
            )
            self.relu = nn.ReLU(inplace=True)
        elif not multi_scale_output:
            self.out_channels = self.out_channels[:1]

    def _fuse_path(self, src: int, dst: int, bn_momentum: float) -> nn.Module:
        """Transform stream ``src`` to the resolution and width of stream ``dst`` (Fig. 3)."""
        c_src, c_dst = self.out_channels[src], self.out_channels[dst]
        if src == dst:
            return nn.Identity()
        if src > dst:  # lower resolution: 1x1 conv to align widths; upsampling happens in forward
            return conv_bn(c_src, c_dst, 1, 1, bn_momentum, relu=False)
        steps = dst - src  # higher resolution: (dst - src) strided 3x3 convs, ReLU between them
        return nn.Sequential(
            *(
                conv_bn(c_src, c_dst if k == steps - 1 else c_src, 3, 2, bn_momentum, relu=k < steps - 1)
                for k in range(steps)
            )
        )

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs[: len(self.out_channels)]
        out = []
        for i, paths in enumerate(self.fuse_layers):
            size = xs[i].shape[-2:]
            y = xs[i]
            for j, path in enumerate(paths):
                if j == i:
                    continue
                z = path(xs[j])
                if j > i:
                    z = interpolate_to(z, size, self.upsample, self.align_corners)
                y = y + z
            out.append(self.relu(y))
        return out


class HRNetBackbone(nn.Module):
    """Stem + stage 1 + stages 2-4; ``forward`` returns the list of stream outputs (high to low resolution).

    Task models subclass this and add their head's layers as attributes, which keeps the state-dict
    keys flat (``conv1``, ..., ``final_layer``) exactly as in the official checkpoints.
    """

    def __init__(self, cfg: HRNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        m = cfg.bn_momentum
        self.conv1 = nn.Conv2d(3, cfg.stem_width, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cfg.stem_width, momentum=m)
        self.conv2 = nn.Conv2d(cfg.stem_width, cfg.stem_width, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cfg.stem_width, momentum=m)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_units(Bottleneck, cfg.stem_width, cfg.stage1_channels, cfg.stage1_blocks, bn_momentum=m)

        widths = list(cfg.branch_channels)
        expansion = BLOCKS[cfg.branch_block].expansion
        branch_counts = [4, 4, 4] if cfg.parallel_from_start else [2, 3, 4]
        prev = [cfg.stage1_channels * Bottleneck.expansion]
        for s, n in enumerate(branch_counts, start=2):
            stage_in = [w * expansion for w in widths[:n]]
            trans = self._transition(prev, stage_in, m)
            last_stage = s == 4
            modules = []
            in_ch = stage_in
            for k in range(cfg.stage_modules[s - 2]):
                last_module = k == cfg.stage_modules[s - 2] - 1
                fuse = cfg.fusion == "full" or (cfg.fusion == "across" and last_module) or (last_stage and last_module)
                module = MultiResolutionModule(
                    in_ch,
                    widths[:n],
                    cfg.stage_blocks[s - 2],
                    cfg.branch_block,
                    fuse,
                    multi_scale_output=cfg.multi_scale_output or not (last_stage and last_module),
                    upsample=cfg.upsample,
                    align_corners=cfg.align_corners,
                    bn_momentum=m,
                )
                modules.append(module)
                in_ch = module.out_channels
            setattr(self, f"transition{s - 1}", trans if trans is not None else nn.ModuleList())
            setattr(self, f"stage{s}", nn.Sequential(*modules))
            prev = in_ch
        self.out_channels: list[int] = list(prev)
        self.out_strides: list[int] = [4 * 2**i for i in range(len(prev))]
        self.min_input = 4 * 2 ** (max(branch_counts) - 1)

    @staticmethod
    def _transition(prev: list[int], cur: list[int], bn_momentum: float) -> nn.ModuleList | None:
        """Match existing streams to the new widths and start new streams from the lowest one.

        A new stream i (beyond the existing ones) is made by strided 3x3 convs from the lowest existing
        stream, one per halving, as in the official code. Returns None when nothing changes.
        """
        layers: list[nn.Module] = []
        for i, c in enumerate(cur):
            if i < len(prev):
                layers.append(nn.Identity() if prev[i] == c else conv_bn(prev[i], c, 3, 1, bn_momentum, relu=True))
            else:
                steps = i + 1 - len(prev)
                c_in = prev[-1]
                layers.append(
                    nn.Sequential(
                        *(
                            conv_bn(c_in, c if k == steps - 1 else c_in, 3, 2, bn_momentum, relu=True)
                            for k in range(steps)
                        )
                    )
                )
        if len(cur) == len(prev) and all(isinstance(t, nn.Identity) for t in layers):
            return None
        return nn.ModuleList(layers)

    def check_input(self, x: Tensor) -> None:
        """Reject inputs whose lowest stream would vanish (smaller than the network's stride)."""
        h, w = x.shape[-2:]
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an image batch (N, 3, H, W), got shape {tuple(x.shape)}")
        if h < self.min_input or w < self.min_input:
            raise ValueError(
                f"input {h}x{w} is smaller than the network's stride {self.min_input}: "
                f"use at least {self.min_input}x{self.min_input}"
            )

    def forward_stages(self, x: Tensor, upto: int = 4) -> list[list[Tensor]]:
        """Outputs of stages 1..``upto`` (each a list of streams), for the features API."""
        self.check_input(x)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        outs = [xs]
        for s in range(2, upto + 1):
            trans: nn.ModuleList = getattr(self, f"transition{s - 1}")
            if len(trans):
                n_prev = len(xs)
                xs = [t(xs[i] if i < n_prev else xs[-1]) for i, t in enumerate(trans)]
            xs = getattr(self, f"stage{s}")(xs)
            outs.append(xs)
        return outs

    def forward_streams(self, x: Tensor) -> list[Tensor]:
        """The backbone's output: one tensor per stream, high to low resolution (also in task models)."""
        return self.forward_stages(x)[-1]

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.forward_streams(x)
