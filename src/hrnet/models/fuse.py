"""Inference-mode fusion: fold every BatchNorm into the convolution in front of it.

At test time a BatchNorm is a fixed per-channel affine map, so ``bn(conv(x))`` equals one convolution
with rescaled weights and a bias. HRNet has a BatchNorm after nearly every one of its ~300 convolutions
(Fig. 3: units, transitions, fusion paths, heads), so folding removes as many memory-bound passes over
the feature maps and is the first step of every fast path (:mod:`hrnet.runtime`).

Folding needs to know that the BN really follows the conv in ``forward``. Two patterns in this package
guarantee it: adjacent ``(Conv2d, BatchNorm2d)`` children of an ``nn.Sequential`` (``conv_bn``,
``downsample``, the heads) and the ``convK`` / ``bnK`` attribute pairs of the residual units and the stem,
whose ``forward`` applies ``bnK(convK(.))``. Folded BNs become ``nn.Identity`` so module paths (and
the keys of the remaining parameters) stay those of the eager model.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from hrnet.models.backbone import HRNetBackbone
from hrnet.models.blocks import BasicBlock, Bottleneck

# modules whose forward applies bn{k}(conv{k}(.)) directly; see the module docstring
_PAIRED_ATTRIBUTES: dict[type[nn.Module], tuple[int, ...]] = {
    BasicBlock: (1, 2),
    Bottleneck: (1, 2, 3),
    HRNetBackbone: (1, 2),
}


class FusionError(ValueError):
    """The model cannot be fused as asked (training mode, mismatched layers)."""


@torch.no_grad()
def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new convolution equal to ``bn(conv(x))`` in eval mode (computed in float64, stored as conv's dtype)."""
    if conv.out_channels != bn.num_features:
        raise FusionError(
            f"cannot fold a BatchNorm of {bn.num_features} channels into a conv with {conv.out_channels} outputs"
        )
    if bn.running_mean is None or bn.running_var is None:
        raise FusionError("cannot fold a BatchNorm without running statistics (track_running_stats=False)")
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    scale = bn.running_var.double().add(bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    bias = conv.bias.double() * scale + shift if conv.bias is not None else shift
    fused.weight.copy_((conv.weight.double() * scale.reshape(-1, 1, 1, 1)).to(conv.weight.dtype))
    fused.bias.copy_(bias.to(conv.weight.dtype))
    return fused


def _fold_sequential(seq: nn.Sequential) -> int:
    """Fold adjacent (Conv2d, BatchNorm2d) children in place; returns how many were folded."""
    names = list(seq._modules)
    count = 0
    for a, b in zip(names, names[1:]):
        conv, bn = seq._modules[a], seq._modules[b]
        if isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d:
            seq._modules[a] = fold_bn(conv, bn)
            seq._modules[b] = nn.Identity()
            count += 1
    return count


def _fold_attributes(module: nn.Module, indices: tuple[int, ...]) -> int:
    """Fold the ``conv{k}`` / ``bn{k}`` pairs of a residual unit or of the stem in place."""
    count = 0
    for k in indices:
        conv, bn = getattr(module, f"conv{k}", None), getattr(module, f"bn{k}", None)
        if isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d:
            setattr(module, f"conv{k}", fold_bn(conv, bn))
            setattr(module, f"bn{k}", nn.Identity())
            count += 1
    return count


def fuse(model: nn.Module, inplace: bool = False) -> nn.Module:
    """The eval-mode model with every BatchNorm folded into its convolution (a copy unless ``inplace``).

    Refuses a model in training mode: there BN normalises with batch statistics, which no folded conv
    can reproduce. The result computes the same function as ``model.eval()`` up to float rounding
    (about 1e-6 relative) and has attribute ``fused_bn`` with the number of folded layers. Training the
    result is meaningless, so it is left in eval mode.
    """
    if model.training:
        raise FusionError(
            "fuse() needs a model in eval mode (BatchNorm folding uses the running statistics); call model.eval() first"
        )
    target = model if inplace else copy.deepcopy(model)
    count = 0
    for module in list(target.modules()):
        if isinstance(module, nn.Sequential):
            count += _fold_sequential(module)
        for cls, indices in _PAIRED_ATTRIBUTES.items():
            if isinstance(module, cls):
                count += _fold_attributes(module, indices)
    target.fused_bn = count
    return target.eval()


def count_batchnorms(model: nn.Module) -> int:
    """BatchNorm layers still present (0 after :func:`fuse` on every model of this package)."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
