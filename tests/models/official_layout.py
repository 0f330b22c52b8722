"""Key -> shape tables of the official HRNet checkpoints, written from the paper's architecture.

Independent of ``hrnet.models``: Section 3.4 (stem, stage 1 of four 64-wide bottlenecks, stages
2-4 with 1, 4, 3 modules of four basic units per stream, widths C, 2C, 4C, 8C) and the official
repositories' naming of the same layers.
"""

from __future__ import annotations

import torch


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.weight": (c,),
        f"{prefix}.bias": (c,),
        f"{prefix}.running_mean": (c,),
        f"{prefix}.running_var": (c,),
        f"{prefix}.num_batches_tracked": (),
    }


def _bottleneck(p: str, cin: int, planes: int) -> dict:
    keys = {
        f"{p}.conv1.weight": (planes, cin, 1, 1),
        **_bn(f"{p}.bn1", planes),
        f"{p}.conv2.weight": (planes, planes, 3, 3),
        **_bn(f"{p}.bn2", planes),
        f"{p}.conv3.weight": (planes * 4, planes, 1, 1),
        **_bn(f"{p}.bn3", planes * 4),
    }
    if cin != planes * 4:
        keys |= {f"{p}.downsample.0.weight": (planes * 4, cin, 1, 1), **_bn(f"{p}.downsample.1", planes * 4)}
    return keys


def _basic(p: str, c: int) -> dict:
    return {
        f"{p}.conv1.weight": (c, c, 3, 3),
        **_bn(f"{p}.bn1", c),
        f"{p}.conv2.weight": (c, c, 3, 3),
        **_bn(f"{p}.bn2", c),
    }


def official_backbone(C: int, last_module_all_outputs: bool) -> dict[str, tuple[int, ...]]:
    """Keys of the standard HRNet-W{C} trunk (stem to stage 4)."""
    keys = {"conv1.weight": (64, 3, 3, 3), **_bn("bn1", 64), "conv2.weight": (64, 64, 3, 3), **_bn("bn2", 64)}
    for u in range(4):
        keys |= _bottleneck(f"layer1.{u}", 256 if u else 64, 64)
    widths = [C, 2 * C, 4 * C, 8 * C]
    # transition1: 256 -> C (3x3, stride 1) and 256 -> 2C (3x3, stride 2)
    keys |= {
        "transition1.0.0.weight": (C, 256, 3, 3),
        **_bn("transition1.0.1", C),
        "transition1.1.0.0.weight": (2 * C, 256, 3, 3),
        **_bn("transition1.1.0.1", 2 * C),
    }
    for stage, (modules, n) in enumerate([(1, 2), (4, 3), (3, 4)], start=2):
        if stage > 2:  # the new, lower stream comes from the previous lowest one by a strided 3x3
            t = f"transition{stage - 1}.{n - 1}.0"
            keys |= {f"{t}.0.weight": (widths[n - 1], widths[n - 2], 3, 3), **_bn(f"{t}.1", widths[n - 1])}
        for m in range(modules):
            p = f"stage{stage}.{m}"
            for b in range(n):
                for u in range(4):
                    keys |= _basic(f"{p}.branches.{b}.{u}", widths[b])
            outs = n if (stage < 4 or m < modules - 1 or last_module_all_outputs) else 1
            for i in range(outs):
                for j in range(n):
                    f = f"{p}.fuse_layers.{i}.{j}"
                    if j > i:  # 1x1 conv + BN, then upsampling
                        keys |= {f"{f}.0.weight": (widths[i], widths[j], 1, 1), **_bn(f"{f}.1", widths[i])}
                    for k in range(i - j):  # strided 3x3 convs; widths change at the last one
                        cout = widths[i] if k == i - j - 1 else widths[j]
                        keys |= {f"{f}.{k}.0.weight": (cout, widths[j], 3, 3), **_bn(f"{f}.{k}.1", cout)}
    return keys


def official_pose(C: int, joints: int = 17) -> dict[str, tuple[int, ...]]:
    """pose_hrnet (HRNet/deep-high-resolution-net): stage 4 ends with the high-resolution output only."""
    return official_backbone(C, last_module_all_outputs=False) | {
        "final_layer.weight": (joints, C, 1, 1),
        "final_layer.bias": (joints,),
    }


def official_seg(C: int, classes: int = 19) -> dict[str, tuple[int, ...]]:
    """seg_hrnet (HRNet/HRNet-Semantic-Segmentation): V2 concat (15C) -> last_layer."""
    c = 15 * C
    return official_backbone(C, last_module_all_outputs=True) | {
        "last_layer.0.weight": (c, c, 1, 1),
        "last_layer.0.bias": (c,),
        **_bn("last_layer.1", c),
        "last_layer.3.weight": (classes, c, 1, 1),
        "last_layer.3.bias": (classes,),
    }


def random_state(
    shapes: dict[str, tuple[int, ...]], seed: int = 1, scale: float = 0.05, batches: int = 7
) -> dict[str, torch.Tensor]:
    """Random tensors of ``shapes`` for a file written in an upstream layout: BN variances in [0.5, 1.5)
    (no division blow-up), small weights (activations stay finite through the deep stack), and the
    ``num_batches_tracked`` counters a trained file has."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(batches)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        else:
            out[key] = torch.randn(shape, generator=g) * scale
    return out
