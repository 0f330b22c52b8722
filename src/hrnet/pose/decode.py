"""In-graph pose decoding: crops -> keypoints in input-crop pixels and scores, as one ``nn.Module``.

This is :func:`hrnet.pose.inference.predict_crops` written with tensor ops only, so that it exports to
ONNX / TorchScript and a runtime user needs no Python: optional flip test (mirror the batch, flip the
heatmaps back with left/right channels swapped and the one-pixel shift, average), argmax, the quarter
pixel step toward the higher neighbour (:func:`hrnet.pose.codec.heatmap_to_coords`), and the map from
heatmap to input-crop pixels that the codec's affine transforms compose to. Keypoints in the original
image are then one affine map away: the inverse of the crop's (center, scale) transform.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hrnet.labels import flip_permutation
from hrnet.models.card import ModelCard
from hrnet.pose.model import card_keypoint_set


def decode_heatmaps(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Heatmaps (N, K, h, w) -> keypoints (N, K, 2) as (x, y) heatmap pixels and their maxima (N, K).

    Same rule as the codec: first argmax, (0, 0) where the maximum is <= 0, and +-0.25 px toward the
    higher neighbour along x and y for peaks not on the border (0 when the neighbours are equal).
    """
    n, k, h, w = heatmaps.shape
    flat = heatmaps.flatten(2)
    maxvals, idx = flat.max(dim=2)
    valid = (maxvals > 0).to(idx.dtype)
    px, py = (idx % w) * valid, torch.div(idx, w, rounding_mode="floor") * valid
    base = py * w + px
    last = h * w - 1

    def at(index: Tensor) -> Tensor:
        return flat.gather(2, index.clamp(0, last).unsqueeze(-1)).squeeze(-1)

    interior = ((px > 0) & (px < w - 1) & (py > 0) & (py < h - 1)).to(heatmaps.dtype)
    dx = torch.sign(at(base + 1) - at(base - 1)) * 0.25 * interior
    dy = torch.sign(at(base + w) - at(base - w)) * 0.25 * interior
    coords = torch.stack([px.to(heatmaps.dtype) + dx, py.to(heatmaps.dtype) + dy], dim=-1)
    return coords, maxvals


def heatmap_to_crop(coords: Tensor, heatmap_hw: Sequence[int], input_hw: Sequence[int]) -> Tensor:
    """Heatmap pixels -> input-crop pixels, as the codec's inverse crop transform composed with the crop.

    The codec zooms by the width ratio on both axes about the centres: crop = (p - hm / 2) * W / w + in / 2.
    """
    h, w = int(heatmap_hw[0]), int(heatmap_hw[1])
    ih, iw = int(input_hw[0]), int(input_hw[1])
    stride = iw / w
    offset = torch.tensor([iw / 2 - w / 2 * stride, ih / 2 - h / 2 * stride], dtype=coords.dtype, device=coords.device)
    return coords * stride + offset


class PoseDecoder(nn.Module):
    """``model`` + decoding: normalised crops (N, 3, H, W) -> ``keypoints`` (N, K, 2) in crop pixels, ``scores``.

    ``flip_pairs`` turns the flip test on (``None``: off); ``shift`` is the codec's one-pixel shift of the
    flipped heatmaps (``flip_back(shift=True)``, the paper's protocol).
    """

    def __init__(
        self,
        model: nn.Module,
        flip_pairs: Sequence[Sequence[int]] | None = None,
        shift: bool = True,
        num_joints: int | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.flip_test = flip_pairs is not None
        self.shift = shift
        k = num_joints if num_joints is not None else getattr(model, "num_joints", None)
        if self.flip_test and k is None:
            raise ValueError("the flip test needs the number of keypoints (num_joints=)")
        perm = flip_permutation(int(k), flip_pairs) if self.flip_test and k is not None else []
        self.register_buffer("perm", torch.tensor(perm, dtype=torch.long), persistent=False)

    def heatmaps(self, x: Tensor) -> Tensor:
        """The (flip-averaged) heatmaps the keypoints are decoded from."""
        if not self.flip_test:
            return self.model(x)
        n = x.shape[0]
        both = self.model(torch.cat([x, x.flip(3)], dim=0))
        plain, mirrored = both[:n], both[n:]
        mirrored = mirrored.flip(3).index_select(1, self.perm)
        if self.shift:
            mirrored = torch.cat([mirrored[..., :1], mirrored[..., :-1]], dim=-1)
        return 0.5 * (plain + mirrored)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        hm = self.heatmaps(x).float()
        coords, scores = decode_heatmaps(hm)
        return heatmap_to_crop(coords, hm.shape[-2:], x.shape[-2:]), scores


def decoder_from_card(model: nn.Module, card: ModelCard, flip: bool = False, topk: int = 5) -> PoseDecoder:
    """The export decoder of a pose card (``topk`` is unused by pose). A flip test swaps left and right
    keypoints by the card's flip pairs, so a card whose keypoint set has none refuses it rather than
    averaging unswapped heatmaps."""
    pairs = card_keypoint_set(card).flip_pairs
    if flip and not pairs:
        raise ValueError(
            f"model card of {card.model}: its keypoint set has no flip pairs, so the flip test cannot swap "
            f"left and right keypoints; export without --flip"
        )
    shift = bool(card.test.get("shift_heatmap", True))
    return PoseDecoder(
        model, flip_pairs=[tuple(p) for p in pairs] if flip else None, shift=shift, num_joints=card.num_outputs
    )
