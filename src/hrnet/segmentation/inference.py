"""Test-time inference: whole image, sliding window, multi-scale and flip, under three protocols.

:func:`segment_image` is the one entry point (evaluation, ``Segmenter`` and the CLI all call it), so a
number measured by ``hrnet seg eval`` is what users get. ``test.protocol`` picks how views are made and
merged (see :class:`~hrnet.segmentation.config.SegTestConfig` and ``docs/seg-protocols.md``):

* ``official-cityscapes`` / ``official-generic`` reproduce the official HRNet test code, so published
  weights give the published labels: the normalised image is resized with OpenCV so its long side is
  ``base_size * s`` (each side rounded with ``int(x + 0.5)``); at each window the logits of the image and
  of its mirror are averaged and exponentiated; windows are averaged where they overlap, each scale is
  upsampled to the image and the scores are *summed* over scales. They differ in the windows: Cityscapes
  runs scales <= 1 on the whole unpadded image and larger ones in windows of stride = crop, flushed back
  from the far edge; the generic protocol pads with black (``-mean/std``) the image that fits in the
  crop, and otherwise every window (stride ``int(2/3 crop)``, starts at multiples of the stride).
* ``ours`` (:func:`predict_probs`): the image tensor is resized with ``F.interpolate``, softmax
  probabilities are averaged over scales and flips; windows of stride ``ceil(2/3 crop)`` with the last
  one flush, zero padding in normalised space. With scale 1 and no flip the result is the whole-image
  softmax. Its scores are probabilities; the official ones are sums of ``exp(logits)`` (argmax is what
  matters; divide by the channel sum for a distribution).

In every protocol a mirrored view's logits are flipped back and, for datasets with left/right classes
(LIP), their channels exchanged before merging.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hrnet.labels import inverse_permutation
from hrnet.segmentation.config import SegTestConfig
from hrnet.segmentation.loss import upsample_logits
from hrnet.segmentation.transforms import resize_pair, to_tensor


def unmirror(logits: Tensor, flip_perm: Sequence[int] | None) -> Tensor:
    """Logits of a mirrored image brought back: flipped horizontally, left/right channels put in place.

    ``flip_perm[c]`` names the class that channel ``c`` of a mirrored prediction stands for.
    """
    logits = logits.flip(-1)
    if flip_perm is None:
        return logits
    return logits[:, torch.tensor(inverse_permutation(flip_perm), dtype=torch.long, device=logits.device)]


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
    model: nn.Module,
    image: Tensor,
    crop_size: Sequence[int],
    stride: Sequence[int] | None = None,
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
                logits = unmirror(logits, flip_perm)
            probs = upsample_logits(logits, out_size).softmax(dim=1)
            total = probs if total is None else total + probs
            n_terms += 1
    assert total is not None
    return total / n_terms


# ----------------------------------------------------------------------------------------------------
# the official protocols


def scaled_size(height: int, width: int, base_size: int, scale: float) -> tuple[int, int]:
    """(H, W) of an image at ``scale``, rounded as the official code: the long side becomes
    ``int(base * scale + 0.5)`` and the other ``int(side * long / long_side + 0.5)``; a square image counts
    its width as the long side. ``base_size`` 0 = the image's own long side."""
    base = base_size if base_size > 0 else max(height, width)
    long_side = max(1, int(base * scale + 0.5))
    if height > width:
        return long_side, max(1, int(width * long_side / height + 0.5))
    return max(1, int(height * long_side / width + 0.5)), long_side


def flush_windows(length: int, crop: int, stride: int) -> list[tuple[int, int]]:
    """Official Cityscapes windows ``(start, end)``: ``ceil((length - crop) / stride) + 1`` of them, each
    ending at ``min(i * stride + crop, length)`` and starting ``crop`` before (never before 0)."""
    n = max(1, math.ceil((length - crop) / stride) + 1)
    ends = [min(i * stride + crop, length) for i in range(n)]
    return [(max(end - crop, 0), end) for end in ends]


def grid_windows(length: int, crop: int, stride: int) -> list[tuple[int, int]]:
    """Official generic windows ``(start, end)`` on a length already padded to >= ``crop``: they start at
    multiples of ``stride`` and are cut at the far edge (the caller pads the short ones back to ``crop``)."""
    n = max(1, math.ceil((length - crop) / stride) + 1)
    return [(i * stride, min(i * stride + crop, length)) for i in range(n)]


def official_normalise(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> float32 (H, W, 3) normalised with the official arithmetic (float64 mean/std)."""
    x = image.astype(np.float32) / 255.0
    x -= np.asarray(mean, dtype=np.float64)
    x /= np.asarray(std, dtype=np.float64)
    return x


def _exp_mean_logits(model: nn.Module, x: Tensor, flip: bool, flip_perm: Sequence[int] | None) -> Tensor:
    """The official per-window scores: ``exp`` of the logits, averaged with the mirror's when ``flip``."""
    logits = whole_logits(model, x)
    if flip:
        logits = (logits + unmirror(whole_logits(model, x.flip(-1)), flip_perm)) * 0.5
    return logits.exp()


def _pad_to(x: Tensor, height: int, width: int, value: Tensor) -> Tensor:
    """Pad (N, 3, h, w) bottom/right to at least (height, width) with a per-channel ``value``."""
    n, c, h, w = x.shape
    if h >= height and w >= width:
        return x
    out = value.view(1, c, 1, 1).expand(n, c, max(h, height), max(w, width)).clone()
    out[:, :, :h, :w] = x
    return out


def _windowed(
    model: nn.Module,
    x: Tensor,
    rows: list[tuple[int, int]],
    cols: list[tuple[int, int]],
    crop: tuple[int, int],
    flip: bool,
    flip_perm: Sequence[int] | None,
    pad: Tensor | None,
) -> Tensor:
    """Scores of ``x`` averaged over the windows ``rows x cols`` (each padded to ``crop`` when ``pad``)."""
    _, _, h, w = x.shape
    total: Tensor | None = None
    count = torch.zeros(1, 1, h, w, device=x.device)
    for y0, y1 in rows:
        for x0, x1 in cols:
            window = x[:, :, y0:y1, x0:x1]
            if pad is not None:
                window = _pad_to(window, crop[0], crop[1], pad)
            scores = _exp_mean_logits(model, window, flip, flip_perm)[:, :, : y1 - y0, : x1 - x0]
            if total is None:
                total = scores.new_zeros(1, scores.shape[1], h, w)
            total[:, :, y0:y1, x0:x1] += scores
            count[:, :, y0:y1, x0:x1] += 1
    assert total is not None
    return total / count


def _default_stride(test: SegTestConfig, crop: tuple[int, int]) -> tuple[int, int]:
    """``test.stride``, else the official one: the crop (Cityscapes) or ``int(2/3 crop)`` (generic)."""
    if test.stride:
        return int(test.stride[0]), int(test.stride[1])
    if test.protocol == "official-cityscapes":
        return crop
    return max(1, int(crop[0] * 2.0 / 3.0)), max(1, int(crop[1] * 2.0 / 3.0))


def _official_scale(
    model: nn.Module,
    x: Tensor,
    scale: float,
    test: SegTestConfig,
    flip_perm: Sequence[int] | None,
    pad: Tensor,
) -> Tensor:
    """Scores (1, C, h, w) of the image ``x`` already resized for ``scale``, windows as the protocol says."""
    _, _, h, w = x.shape
    cityscapes = test.protocol == "official-cityscapes"
    if test.mode == "whole" or (cityscapes and test.mode == "auto" and scale <= 1.0):
        return _exp_mean_logits(model, x, test.flip, flip_perm)
    crop = (int(test.crop_size[0]), int(test.crop_size[1]))
    sh, sw = _default_stride(test, crop)
    if cityscapes:
        rows, cols = flush_windows(h, crop[0], sh), flush_windows(w, crop[1], sw)
        return _windowed(model, x, rows, cols, crop, test.flip, flip_perm, None)
    # official-generic
    if max(h, w) <= min(crop):
        return _exp_mean_logits(model, _pad_to(x, crop[0], crop[1], pad), test.flip, flip_perm)[:, :, :h, :w]
    x = _pad_to(x, crop[0], crop[1], pad)
    big_h, big_w = x.shape[-2:]
    rows, cols = grid_windows(big_h, crop[0], sh), grid_windows(big_w, crop[1], sw)
    return _windowed(model, x, rows, cols, crop, test.flip, flip_perm, pad)[:, :, :h, :w]


@torch.no_grad()
def official_scores(
    model: nn.Module,
    image: np.ndarray,
    test: SegTestConfig,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    flip_perm: Sequence[int] | None,
    device: torch.device,
) -> Tensor:
    """Scores (1, C, H, W) of an RGB uint8 image under an official protocol, at the image's size.

    For every scale: OpenCV-bilinear resize of the normalised image (long side ``base_size * s``), scores
    of :func:`_official_scale`, bilinear upsampling to (H, W); the scales are summed.
    """
    normalised = official_normalise(image, mean, std)
    h, w = image.shape[:2]
    pad = torch.from_numpy(-np.asarray(mean, dtype=np.float64) / np.asarray(std, dtype=np.float64)).float()
    pad = pad.to(device)
    total: Tensor | None = None
    for scale in test.scales:
        nh, nw = scaled_size(h, w, test.base_size, float(scale))
        resized = normalised if (nh, nw) == (h, w) else cv2.resize(normalised, (nw, nh), interpolation=cv2.INTER_LINEAR)
        x = torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1))).unsqueeze(0).to(device)
        scores = upsample_logits(_official_scale(model, x, float(scale), test, flip_perm, pad), (h, w))
        total = scores if total is None else total + scores
    assert total is not None
    return total


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _needs_crop(test: SegTestConfig) -> bool:
    if test.mode == "whole":
        return False
    if test.protocol == "official-generic":
        return True
    if test.protocol == "official-cityscapes":
        return test.mode == "slide" or any(float(s) > 1.0 for s in test.scales)
    return test.mode == "slide"


@torch.no_grad()
def segment_image(
    model: nn.Module,
    image: np.ndarray,
    test: SegTestConfig,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    flip_perm: Sequence[int] | None,
    out_size: tuple[int, int] | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Scores (1, C, H_out, W_out) for one RGB uint8 image (H, W, 3), following ``test.protocol``;
    argmax over C gives labels.

    ``out_size`` defaults to the image's size; ``device`` to the model's. ``test.resize_to`` resizes the
    image first (OpenCV bilinear, as the official LIP test) and the scores are upsampled (bilinear) from
    that size to ``out_size``. ``flip_perm`` (see :func:`unmirror`) swaps left/right classes of mirrored
    views. The model must already be in eval mode. ``ours`` returns probabilities (they sum to 1 over C),
    the official protocols sums of ``exp(logits)`` over scales, exactly as the official code.
    """
    test.check()
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"segment_image expects an RGB uint8 array (H, W, 3), got {got}")
    if _needs_crop(test) and not test.crop_size:
        raise ValueError(
            f"test.crop_size (H, W) is needed by test.protocol={test.protocol} with test.mode={test.mode} "
            "(the official tests use 1024x2048 for Cityscapes, 480x480 for PASCAL-Context, 473x473 for LIP)"
        )
    out_size = (int(out_size[0]), int(out_size[1])) if out_size else (image.shape[0], image.shape[1])
    device = torch.device(device) if device is not None else _model_device(model)
    if test.resize_to:
        image, _ = resize_pair(image, None, test.resize_to)
    h, w = image.shape[:2]
    if test.protocol == "ours":
        x = to_tensor(image, mean, std).unsqueeze(0).to(device)
        factor = test.base_size / max(h, w) if test.base_size > 0 else 1.0
        return predict_probs(
            model,
            x,
            out_size=out_size,
            mode="whole" if test.mode == "auto" else test.mode,
            crop_size=test.crop_size,
            stride=test.stride,
            scales=[float(s) * factor for s in test.scales],
            flip=test.flip,
            flip_perm=flip_perm,
        )
    scores = official_scores(model, image, test, mean=mean, std=std, flip_perm=flip_perm, device=device)
    return upsample_logits(scores, out_size)


# ----------------------------------------------------------------------------------------------------
# bounded memory for very large images

DEFAULT_MAX_PIXELS = 1 << 23  # 8.4 MP (4096 x 2048; a 3840 x 2160 frame fits): the largest image run as it is
_BAND_BYTES = 64 << 20  # full-size score rows made at once by upsample_argmax


def fit_pixels(height: int, width: int, max_pixels: int) -> tuple[int, int]:
    """(H, W) shrunk with its aspect ratio so that H x W <= ``max_pixels``; unchanged when it fits."""
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    if height * width <= max_pixels:
        return height, width
    factor = math.sqrt(max_pixels / (height * width))
    h, w = max(1, int(height * factor)), max(1, int(width * factor))
    while h * w > max_pixels:  # int() rounding can leave one row too many on extreme aspect ratios
        h, w = (h - 1, w) if h >= w else (h, w - 1)
    return h, w


@torch.no_grad()
def upsample_argmax(scores: Tensor, size: Sequence[int], band_bytes: int = _BAND_BYTES) -> np.ndarray:
    """Labels (H, W) int64: argmax over C of ``scores`` (1, C, h, w) upsampled bilinearly to ``size``.

    The same as ``upsample_logits(scores, size)[0].argmax(0)`` (bilinear, align_corners=False; equal up
    to float rounding), but made in bands of rows, so the (C, H, W) map of a 100-megapixel image (8 GB for
    19 classes) never exists: each band interpolates its rows from the two source rows around them, then
    its columns with ``F.interpolate``.
    """
    out_h, out_w = int(size[0]), int(size[1])
    c, h, w = scores.shape[1:]
    labels = np.empty((out_h, out_w), dtype=np.int64)
    scale = h / out_h
    rows = max(1, band_bytes // max(1, c * out_w * scores.element_size()))
    src = scores[0].float()
    for y0 in range(0, out_h, rows):
        y1 = min(out_h, y0 + rows)
        ys = ((torch.arange(y0, y1, dtype=torch.float64) + 0.5) * scale - 0.5).clamp_min(0.0)
        i0 = ys.floor().long().clamp_max(h - 1)
        i1 = (i0 + 1).clamp_max(h - 1)
        wy = (ys - i0).float().to(src.device).view(1, -1, 1)
        band = src[:, i0.to(src.device)] * (1 - wy) + src[:, i1.to(src.device)] * wy  # (C, rows, w)
        band = F.interpolate(band.unsqueeze(0), size=(y1 - y0, out_w), mode="bilinear", align_corners=False)
        labels[y0:y1] = band[0].argmax(0).cpu().numpy()
    return labels


@torch.no_grad()
def segment_labels(
    model: nn.Module,
    image: np.ndarray,
    test: SegTestConfig,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    flip_perm: Sequence[int] | None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Labels (H, W) int64 of one RGB uint8 image, in memory bounded by ``max_pixels``.

    An image of at most ``max_pixels`` pixels gives exactly the argmax of :func:`segment_image`. A larger
    one is **downscaled** (OpenCV area interpolation, aspect kept) to fit ``max_pixels``, the test protocol
    runs on that copy as on any image (its ``base_size`` / ``resize_to`` / windows apply to the copy), and
    the labels come back at full size through :func:`upsample_argmax`. The network, the protocol's score
    maps and the label bands then never exceed the budget, whatever the photo: a 108-megapixel photo is
    segmented at 8.4 MP with the default. What is lost is detail finer than the downscaled pixel, which
    a protocol with ``base_size`` (Cityscapes: 2048) would discard anyway.
    """
    h, w = image.shape[:2]
    fit = fit_pixels(h, w, max_pixels)
    if fit == (h, w):
        scores = segment_image(model, image, test, mean=mean, std=std, flip_perm=flip_perm, device=device)
        return scores[0].argmax(0).cpu().numpy().astype(np.int64)
    small = cv2.resize(image, (fit[1], fit[0]), interpolation=cv2.INTER_AREA)
    scores = segment_image(model, small, test, mean=mean, std=std, flip_perm=flip_perm, device=device)
    return upsample_argmax(scores, (h, w))
