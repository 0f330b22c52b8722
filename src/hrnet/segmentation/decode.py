"""In-graph segmentation decoding: image batch -> per-pixel labels at the input size, as one ``nn.Module``.

The model's logits are 1/4 of the input; :class:`SegDecoder` upsamples them bilinearly (align_corners
False, as :func:`hrnet.segmentation.loss.upsample_logits`) and takes the argmax, optionally averaging the
softmax with that of the mirrored image (flip test, with left/right classes permuted back), so an
exported graph returns what :class:`~hrnet.segmentation.api.Segmenter` returns in whole-image mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hrnet.labels import flip_permutation, inverse_permutation
from hrnet.models.card import ModelCard


class SegDecoder(nn.Module):
    """``model`` + upsampling + argmax: (N, 3, H, W) -> ``labels`` (N, H, W) int64.

    ``flip`` adds the mirrored image (probabilities averaged); ``flip_perm[c]`` is the class that channel
    ``c`` of a mirrored prediction stands for (identity when ``None``).
    """

    def __init__(self, model: nn.Module, flip: bool = False, flip_perm: Sequence[int] | None = None) -> None:
        super().__init__()
        self.model = model
        self.flip = flip
        inverse = inverse_permutation(flip_perm) if flip and flip_perm is not None else []
        self.register_buffer("inverse", torch.tensor(inverse, dtype=torch.long), persistent=False)

    def _logits(self, x: Tensor) -> Tensor:
        out = self.model(x)
        if isinstance(out, (list, tuple)):  # auxiliary heads: the first output is the prediction
            out = out[0]
        return F.interpolate(out.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        if not self.flip:
            return self._logits(x).argmax(dim=1)
        n = x.shape[0]
        logits = self._logits(torch.cat([x, x.flip(3)], dim=0))
        mirrored = logits[n:].flip(3)
        if self.inverse.numel():
            mirrored = mirrored.index_select(1, self.inverse)
        probs = logits[:n].softmax(dim=1) + mirrored.softmax(dim=1)
        return probs.argmax(dim=1)


def decoder_from_card(model: nn.Module, card: ModelCard, flip: bool = False, topk: int = 5) -> SegDecoder:
    """The export decoder of a segmentation card (``topk`` is unused): the flip test mirrors the classes
    of the card's left/right pairs (none for street scenes, whose classes have no side)."""
    perm = None
    if flip and card.meta.get("flip_pairs"):
        perm = flip_permutation(card.num_outputs, [tuple(p) for p in card.meta["flip_pairs"]])
    return SegDecoder(model, flip=flip, flip_perm=perm)
