"""Test-time inference: whole image, sliding window, multi-scale and flip.

* ``whole``: one forward pass; the 1/4-resolution logits are upsampled bilinearly to the input size.
* ``slide``: the (padded) image is covered by crop-sized windows with the given stride; each window's
  logits are upsampled to the window and accumulated, then divided by how many windows covered a pixel.
  A window that covers the whole image gives exactly the whole-image logits.
* multi-scale + flip: for every scale the image is resized, run (whole or slide), optionally run again
  mirrored (the mirrored logits are flipped back and, for datasets with left/right classes such as LIP,
  their channels permuted), the logits upsampled to the output size and turned into probabilities;
  probabilities are averaged over scales and flips. With scales ``(1.0,)`` and no flip the result is
  ``softmax`` of the whole-image (or slide) logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hrnet.segmentation.loss import upsample_logits


def _forward(model: nn.Module, x: Tensor) -> Tensor:
    out = model(x)
    if isinstance(out, (list, tuple)):  # heads with auxiliary outputs: the first is the main prediction
        out = out[0]
    return out


@torch.no_grad()
def whole_logits(model: nn.Module, image: Tensor) -> Tensor:
    """Logits (N, C, H, W) for a normalised batch (N, 3, H, W), upsampled to the input size."""
    return upsample_logits(_forward(model, image).float(), image.shape[-2:])


def window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Start offsets of windows of size ``crop`` and step ``stride`` covering ``length`` (last one flush)."""
    if length <= crop:
        return [0]
    n = math.ceil((length - crop) / stride) + 1
    return [min(i * stride, length - crop) for i in range(n)]


@torch.no_grad()
def slide_logits(
    model: nn.Module, image: Tensor, crop_size: Sequence[int], stride: Sequence[int] | None = None,
    num_classes: int | None = None,
) -> Tensor:
    """Sliding-window logits (N, C, H, W): windows of ``crop_size`` (H, W) with overlap, averaged.

    The image is zero-padded (bottom/right, in normalised space) up to the crop size when smaller.
    ``stride`` defaults to 2/3 of the crop, as the official code.
    """
    n, _, h, w = image.shape
    ch, cw = int(crop_size[0]), int(crop_size[1])
    if stride:
        sh, sw = int(stride[0]), int(stride[1])
    else:
        sh, sw = max(1, math.ceil(ch * 2 / 3)), max(1, math.ceil(cw * 2 / 3))
    ph, pw = max(ch - h, 0), max(cw - w, 0)
    padded = F.pad(image, (0, pw, 0, ph)) if (ph or pw) else image
    H, W = padded.shape[-2:]
    total: Tensor | None = None
    count = torch.zeros(1, 1, H, W, device=image.device)
    for y in window_starts(H, ch, sh):
        for x in window_starts(W, cw, sw):
            crop = padded[:, :, y : y + ch, x : x + cw]
            logits = whole_logits(model, crop)
            if total is None:
                total = logits.new_zeros(n, num_classes or logits.shape[1], H, W)
            total[:, :, y : y + ch, x : x + cw] += logits
            count[:, :, y : y + ch, x : x + cw] += 1
    assert total is not None
    return (total / count)[:, :, :h, :w]


@torch.no_grad()
def predict_probs(
    model: nn.Module,
    image: Tensor,
    *,
    out_size: Sequence[int] | None = None,
    mode: str = "whole",
    crop_size: Sequence[int] | None = None,
    stride: Sequence[int] | None = None,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    flip_perm: Sequence[int] | None = None,
) -> Tensor:
    """Class probabilities (N, C, *out_size) averaged over ``scales`` and (optionally) a horizontal flip.

    ``image`` is a normalised (N, 3, H, W) batch; ``out_size`` defaults to (H, W). ``flip_perm[c]`` names
    the class that channel ``c`` of a mirrored prediction stands for (identity when ``None``).
    """
    if mode not in ("whole", "slide"):
        raise ValueError(f"mode must be 'whole' or 'slide', got {mode!r}")
    if mode == "slide" and not crop_size:
        raise ValueError("sliding-window inference needs crop_size (H, W)")
    h, w = image.shape[-2:]
    out_size = tuple(out_size) if out_size else (h, w)

    def run(x: Tensor) -> Tensor:
        return slide_logits(model, x, crop_size, stride) if mode == "slide" else whole_logits(model, x)

    total: Tensor | None = None
    n_terms = 0
    for scale in scales:
        x = image
        if scale != 1.0:
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            x = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        views = [(x, False)] + ([(x.flip(-1), True)] if flip else [])
        for view, mirrored in views:
            logits = run(view)
            if mirrored:
                logits = logits.flip(-1)
                if flip_perm is not None:
                    # channel c of the mirrored output predicts class flip_perm[c]; put it back in place
                    inverse = torch.empty(len(flip_perm), dtype=torch.long)
                    inverse[torch.as_tensor(list(flip_perm))] = torch.arange(len(flip_perm))
                    logits = logits[:, inverse.to(logits.device)]
            probs = upsample_logits(logits, out_size).softmax(dim=1)
            total = probs if total is None else total + probs
            n_terms += 1
    assert total is not None
    return total / n_terms
