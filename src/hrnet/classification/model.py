"""Building HRNet-Wx-C classifiers for training, and their model card.

Fine-tuning (``model.pretrained``: ImageNet weights onto another class count) re-initialises the
classifier and logs it, through the one loader (:func:`hrnet.models.weights.load_weights`);
inference never does. The card carries the class ids and names, the head variant, backbone overrides
and the evaluation transform (resize, crop, interpolation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from hrnet.classification.classes import imagenet_classes
from hrnet.classification.config import ClsConfig, ClsModelConfig
from hrnet.io import IMAGENET_MEAN, IMAGENET_STD
from hrnet.models.card import ModelCard
from hrnet.models.weights import load_weights
from hrnet.models.zoo import create_model, default_input_size

HUB = "hub"


def weights_num_classes(state: Mapping[str, Tensor]) -> int | None:
    """The class count of a (normalised) classification state dict, or None if it has no classifier."""
    weight = state.get("classifier.weight")
    return int(weight.shape[0]) if weight is not None else None


def model_kwargs(cfg: ClsModelConfig) -> dict[str, Any]:
    """``create_model`` keywords of a model config besides the class count: head and backbone overrides."""
    return {"head": cfg.head, **cfg.overrides()}


def build_model(cfg: ClsConfig, *, pretrained: bool = True) -> nn.Module:
    """The classifier of an experiment, with ``model.pretrained`` ("hub" or a file) as the training start
    when ``pretrained`` (not when other weights follow, as in evaluation).

    A start file of another class count (ImageNet weights for a 10-class set) leaves the classifier
    freshly initialised, with a log line; everything else loads strictly.
    """
    m = cfg.model
    start = m.pretrained if pretrained else None
    if start == HUB:
        return create_model(m.name, pretrained=True, num_classes=m.num_classes, **model_kwargs(m))
    model = create_model(m.name, num_classes=m.num_classes, **model_kwargs(m))
    if start:
        load_weights(model, start, on_head_mismatch="reinit")
    return model


def make_card(cfg: ClsConfig, *, classes: Sequence[tuple[str, str]]) -> ModelCard:
    """The model card of a classification experiment; ``classes`` are (id, name) pairs in head order."""
    d = cfg.data
    return ModelCard(
        task="cls",
        model=cfg.model.name,
        num_outputs=len(classes),
        labels=[n for _, n in classes],
        overrides={k: list(v) if isinstance(v, tuple) else v for k, v in model_kwargs(cfg.model).items()},
        input_size=[d.crop_size, d.crop_size],
        mean=list(IMAGENET_MEAN),
        std=list(IMAGENET_STD),
        meta={"class_ids": [i for i, _ in classes]},
        test={"resize_size": d.resize_size, "crop_size": d.crop_size, "interpolation": d.interpolation},
    )


def model_from_card(card: ModelCard) -> nn.Module:
    """The classifier a card describes (weights not loaded); the card is checked first."""
    check_card(card)
    return create_model(card.model, num_classes=card.num_outputs, **card.builder_overrides())


def check_card(card: ModelCard) -> None:
    """Raise one ``ValueError`` naming what a classification card gets wrong: class ids, one per class."""
    ids = card.meta.get("class_ids")
    if ids is not None and (not isinstance(ids, list) or len(ids) != card.num_outputs):
        raise ValueError(
            f"model card of {card.model}: meta.class_ids must list {card.num_outputs} class ids, "
            f"got {len(ids) if isinstance(ids, list) else type(ids).__name__}"
        )


def default_card(name: str, input_size: tuple[int, int] | None = None) -> ModelCard:
    """The card of a bare classification model name: the 1000 ImageNet classes at 224x224."""
    classes = imagenet_classes()
    return ModelCard(
        task="cls",
        model=name,
        num_outputs=len(classes),
        labels=[n for _, n in classes],
        input_size=list(input_size or default_input_size(name)),
        meta={"class_ids": [i for i, _ in classes]},
    )
