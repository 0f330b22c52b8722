"""Parameter and FLOP counts in the convention of the paper's tables.

The HRNet papers report "GFLOPs" as the multiply-adds of convolution and fully connected layers
divided by 2**30 (the official repositories' model summary); BN, ReLU, pooling, additions and
upsampling are not counted. We also give GMACs (the same multiply-adds / 1e9), the unit most other
tools print, so numbers from both worlds can be compared.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call


@torch.no_grad()
def count_macs(model: nn.Module, input_size: tuple[int, int]) -> int:
    """Multiply-adds of all Conv2d and Linear layers for one image of ``input_size`` (H, W)."""
    total = 0

    def hook(module: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += module.weight.numel() * out.shape[-1] * out.shape[-2]
        else:
            total += module.weight.numel() * (out.numel() // out.shape[-1])

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    # run on the meta device: only shapes are computed, so 1024x2048 inputs cost nothing
    meta = {k: torch.empty_like(v, device="meta") for k, v in [*model.named_parameters(), *model.named_buffers()]}
    try:
        functional_call(model, meta, (torch.zeros(1, 3, *input_size, device="meta"),))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(total)


def model_complexity(model: nn.Module, input_size: tuple[int, int] = (224, 224)) -> dict[str, float | int]:
    """``params`` (int), ``macs`` (int), ``gmacs`` (macs / 1e9) and ``gflops`` (macs / 2**30, paper)."""
    params = sum(p.numel() for p in model.parameters())
    macs = count_macs(model, tuple(input_size))
    return {"params": params, "macs": macs, "gmacs": macs / 1e9, "gflops": macs / 2**30}
