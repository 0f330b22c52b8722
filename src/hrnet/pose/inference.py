"""Top-down inference: crops -> heatmaps (with flip test) -> keypoints in image pixels.

:func:`predict_crops` is the one path used by evaluation, ``hrnet pose predict`` and
:class:`~hrnet.pose.api.PoseEstimator`, so a number measured in evaluation is what users get.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from hrnet.pose.codec import HeatmapCodec, flip_back
from hrnet.pose.transforms import box_to_center_scale, normalize_image, warp_image


@torch.no_grad()
def predict_crops(
    model: nn.Module,
    images: torch.Tensor,
    centers: np.ndarray,
    scales: np.ndarray,
    codec: HeatmapCodec,
    flip_pairs: Sequence[tuple[int, int]],
    flip_test: bool = True,
    shift_heatmap: bool = True,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised crops (N, 3, H, W) -> keypoints (N, K, 2) in image pixels and scores (N, K).

    With ``flip_test`` the mirrored crop's heatmaps are flipped back (pairs swapped, shifted one pixel
    when ``shift_heatmap``) and averaged with the plain ones, as in the paper's evaluation; both views go
    through the network as one batch. ``forward`` replaces ``model(x)`` (a runtime from
    :func:`hrnet.runtime.optimize_for_inference`); ``model`` still gives the device.
    """
    if images.shape[0] == 0:
        k = getattr(model, "num_joints", 0)
        return np.zeros((0, k, 2)), np.zeros((0, k))
    device = next(model.parameters()).device
    x = images.to(device, non_blocking=True).float()
    run = forward or model
    if flip_test:
        both = run(torch.cat([x, x.flip(3)])).float()
        heatmaps, flipped = both[: len(x)], both[len(x) :]
        heatmaps = 0.5 * (heatmaps + flip_back(flipped, flip_pairs, shift=shift_heatmap))
    else:
        heatmaps = run(x).float()
    return codec.decode(heatmaps, np.asarray(centers), np.asarray(scales))


def crop_people(
    image_rgb: np.ndarray,
    boxes_xyxy: np.ndarray,
    input_size: Sequence[int],
    padding: float = 1.25,
    source: str | None = None,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Crops (N, 3, H, W), centers (N, 2) and scales (N, 2) of person boxes (N, >=4) x1, y1, x2, y2.

    A box that is a single point (no width and no height) has no crop; it comes from an image of one
    pixel (whose whole-image box is ``[0, 0, 0, 0]``), so the error names ``source`` (the image file)
    and its size rather than the crop scale it would otherwise fail on.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    boxes = boxes.reshape(-1, boxes.shape[-1] if boxes.size else 4)
    aspect = input_size[0] / input_size[1]
    crops, centers, scales = [], [], []
    for b in boxes:
        if b[2] <= b[0] and b[3] <= b[1]:
            h, w = image_rgb.shape[:2]
            raise ValueError(
                f"{source or 'image'}: image is {w}x{h} pixels, too small to crop a person from "
                f"(person box {[float(v) for v in b[:4]]} is a single point)"
            )
        c, s = box_to_center_scale([b[0], b[1], b[2] - b[0], b[3] - b[1]], aspect, padding)
        crop, _ = warp_image(image_rgb, c, s, 0.0, input_size)
        crops.append(torch.from_numpy(normalize_image(crop)))
        centers.append(c)
        scales.append(s)
    if not crops:
        return torch.zeros(0, 3, input_size[1], input_size[0]), np.zeros((0, 2)), np.zeros((0, 2))
    return torch.stack(crops), np.stack(centers), np.stack(scales)


def _collate(batch: list[dict]) -> dict[str, Any]:
    """Stack images; keep metadata as lists of numpy values (no tensor conversion needed for decoding)."""
    return {"image": torch.stack([b["image"] for b in batch]), "meta": [b["meta"] for b in batch]}


def predict_dataset(
    model: nn.Module,
    dataset: Dataset,
    codec: HeatmapCodec,
    flip_pairs: Sequence[tuple[int, int]],
    batch_size: int = 32,
    workers: int = 0,
    flip_test: bool = True,
    shift_heatmap: bool = True,
    rank: int = 0,
    world_size: int = 1,
) -> list[dict[str, Any]]:
    """Predict every crop of ``dataset`` (this rank's shard ``rank::world_size``); one dict per crop with
    ``index``, ``image_id``, ``keypoints`` (K, 2), ``keypoint_scores`` (K,), ``score``, ``area``."""
    indices = list(range(rank, len(dataset), world_size))  # type: ignore[arg-type]
    loader = DataLoader(
        Subset(dataset, indices), batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=_collate
    )
    was_training = model.training
    model.eval()
    out: list[dict[str, Any]] = []
    try:
        for batch in loader:
            metas = batch["meta"]
            centers = np.stack([m["center"] for m in metas])
            scales = np.stack([m["scale"] for m in metas])
            kpts, scores = predict_crops(
                model, batch["image"], centers, scales, codec, flip_pairs, flip_test, shift_heatmap
            )
            for m, k, s in zip(metas, kpts, scores):
                out.append(
                    {
                        "index": m["index"],
                        "image_id": m["image_id"],
                        "keypoints": k,
                        "keypoint_scores": s,
                        "score": m["score"],
                        "area": m["area"],
                    }
                )
    finally:
        model.train(was_training)
    return out
