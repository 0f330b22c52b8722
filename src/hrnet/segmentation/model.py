"""The segmentation network of a config: build (ImageNet start), and its model card.

The card carries the class names, colours, left/right flip pairs, normalisation and the whole test
protocol (``test`` section), so ``Segmenter("model_best.safetensors")`` segments as evaluation did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from hrnet.engine.config import config_to_dict
from hrnet.models.card import ModelCard
from hrnet.models.zoo import create_model, default_input_size
from hrnet.segmentation.config import SegConfig, SegTestConfig
from hrnet.segmentation.labels import dataset_classes

TEST_SKIP = ("max_images",)  # evaluation-run settings, not properties of the model


def model_overrides(cfg: SegConfig) -> dict[str, Any]:
    """Backbone overrides the config asks for (tiny test models)."""
    out: dict[str, Any] = {}
    if cfg.model.stage_modules is not None:
        out["stage_modules"] = tuple(cfg.model.stage_modules)
    if cfg.model.stage_blocks is not None:
        out["stage_blocks"] = tuple(cfg.model.stage_blocks)
    return out


def build_model(cfg: SegConfig, *, pretrained: bool = True) -> nn.Module:
    """The configured HRNetV2 segmentation network, ImageNet-initialised from ``model.pretrained`` when
    ``pretrained`` (training starts; the file's classifier, if any, is re-initialised for this class
    count), not when other weights follow (evaluation)."""
    return create_model(
        cfg.model.name,
        pretrained=(cfg.model.pretrained or False) if pretrained else False,
        num_classes=cfg.data.num_classes,
        **model_overrides(cfg),
    )


def make_card(
    cfg: SegConfig,
    *,
    names: Sequence[str],
    palette: Sequence[Sequence[int]],
    flip_pairs: Sequence[Sequence[int]],
) -> ModelCard:
    """The model card of a segmentation experiment."""
    test = {k: v for k, v in config_to_dict(cfg.test).items() if k not in TEST_SKIP}
    return ModelCard(
        task="seg",
        model=cfg.model.name,
        num_outputs=len(names),
        labels=list(names),
        overrides={k: list(v) for k, v in model_overrides(cfg).items()},
        input_size=list(cfg.test.resize_to) if cfg.test.resize_to else None,
        mean=list(cfg.data.mean),
        std=list(cfg.data.std),
        meta={
            "palette": [list(map(int, c)) for c in palette],
            "flip_pairs": [list(map(int, p)) for p in flip_pairs],
            "dataset": cfg.data.dataset,
            "ignore_index": 255,
        },
        test=test,
    )


def card_test_config(card: ModelCard) -> SegTestConfig:
    """The test protocol a segmentation card carries (defaults for what it does not say)."""
    known = SegTestConfig.__dataclass_fields__
    return SegTestConfig(**{k: v for k, v in card.test.items() if k in known})


def model_from_card(card: ModelCard) -> nn.Module:
    """The segmentation network a card describes (weights not loaded); the card is checked first."""
    check_card(card)
    return create_model(card.model, num_classes=card.num_outputs, **card.builder_overrides())


def check_card(card: ModelCard) -> None:
    """Raise one ``ValueError`` naming what a segmentation card lacks: a colour per class, valid flip pairs."""
    palette = card.require_meta("palette", list, "one [R, G, B] colour per class")
    if len(palette) < card.num_outputs or not all(isinstance(c, list) and len(c) == 3 for c in palette):
        raise ValueError(
            f"model card of {card.model}: meta.palette must hold {card.num_outputs} [R, G, B] colours, "
            f"got {len(palette)} entries"
        )
    for pair in card.meta.get("flip_pairs") or []:
        if not (isinstance(pair, list) and len(pair) == 2 and all(0 <= int(i) < card.num_outputs for i in pair)):
            raise ValueError(f"model card of {card.model}: meta.flip_pairs entry {pair} is not two class indices")


def default_card(name: str, input_size: tuple[int, int] | None = None) -> ModelCard:
    """The card of a bare segmentation model name: Cityscapes' 19 classes and colours at 1024x2048."""
    names, palette, pairs = dataset_classes("cityscapes")
    return ModelCard(
        task="seg",
        model=name,
        num_outputs=len(names),
        labels=names,
        input_size=list(input_size or default_input_size(name)),
        meta={"palette": [list(c) for c in palette], "flip_pairs": [list(p) for p in pairs]},
    )
