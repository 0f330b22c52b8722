"""In-graph classification decoding: image batch -> top-k softmax probabilities and class indices.

What :meth:`hrnet.classification.api.Classifier.predict` computes after the network, as tensor ops, so
an exported graph hands a runtime user ranked classes directly.
"""

from __future__ import annotations

from torch import Tensor, nn

from hrnet.models.card import ModelCard


class ClsDecoder(nn.Module):
    """``model`` + softmax + top-k: (N, 3, H, W) -> ``scores`` (N, k) probabilities, ``indices`` (N, k) int64."""

    def __init__(self, model: nn.Module, topk: int = 5, num_classes: int | None = None) -> None:
        super().__init__()
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        n = (
            num_classes
            if num_classes is not None
            else getattr(getattr(model, "classifier", None), "out_features", None)
        )
        self.model = model
        self.topk = min(topk, n) if n else topk

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        probs = self.model(x).float().softmax(dim=1)
        scores, indices = probs.topk(self.topk, dim=1)
        return scores, indices


def decoder_from_card(model: nn.Module, card: ModelCard, flip: bool = False, topk: int = 5) -> ClsDecoder:
    """The export decoder of a classification card: top-``topk`` classes (``flip`` does not apply)."""
    if flip:
        raise ValueError("--flip applies to pose and segmentation exports, not to classification")
    return ClsDecoder(model, topk=topk, num_classes=card.num_outputs)
