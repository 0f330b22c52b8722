"""The pose network of a config: build, official initialisation, fine-tuning start, and its model card.

The card carries the whole keypoint set (names, flip pairs, skeleton, sigmas), the crop size and the
test-time settings, so a trained ``model_best.safetensors`` predicts with no other argument.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from torch import nn

from hrnet.io import IMAGENET_MEAN, IMAGENET_STD
from hrnet.models.card import ModelCard
from hrnet.models.weights import load_weights
from hrnet.models.zoo import create_model, default_input_size
from hrnet.pose.config import PoseConfig, PoseTestConfig, resolve_keypoint_set
from hrnet.pose.keypoints import KeypointSet, keypoint_set_from_dict, load_keypoint_set

log = logging.getLogger("hrnet.pose")


def init_pose_weights(model: nn.Module) -> None:
    """The official pose initialisation: convolutions N(0, 0.001) with zero bias, batch norms 1 / 0.

    Small initial heatmaps (instead of PyTorch's default O(1) outputs) make the MSE start near the
    target's energy and training from scratch converge much sooner.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def build_model(cfg: PoseConfig, *, keypoint_set: KeypointSet | None = None, pretrained: bool = True) -> nn.Module:
    """The configured pose network with one heatmap per keypoint (``keypoint_set``, default the config's);
    ``model.pretrained`` is loaded non-strictly when ``pretrained`` (training starts), not when other
    weights follow (evaluation)."""
    ks = keypoint_set or resolve_keypoint_set(cfg.data)
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.model.overrides.items()}
    if not cfg.model.name.startswith("pose_"):
        raise ValueError(f"model.name must be a pose model (pose_hrnet_w32, ...), got {cfg.model.name!r}")
    model = create_model(cfg.model.name, num_joints=ks.num_keypoints, **overrides)
    init_pose_weights(model)
    if pretrained and cfg.model.pretrained:
        # fine-tuning start (ImageNet or another pose model): a head of another size is re-initialised
        result = load_weights(model, cfg.model.pretrained, strict=False, on_head_mismatch="reinit")
        if result.missing or result.unexpected:
            log.info(
                "%s: %d model tensors not in the file (kept as initialised, e.g. %s); %d file tensors unused (e.g. %s)",
                cfg.model.pretrained,
                len(result.missing),
                result.missing[:3],
                len(result.unexpected),
                result.unexpected[:3],
            )
    return model


TEST_KEYS = ("flip_test", "shift_heatmap", "dark")


def keypoint_set_to_dict(ks: KeypointSet) -> dict[str, Any]:
    """The plain-data form of a keypoint set (what :func:`keypoint_set_from_dict` reads back)."""
    data: dict[str, Any] = {
        "name": ks.name,
        "names": list(ks.names),
        "flip_pairs": [list(p) for p in ks.flip_pairs],
        "skeleton": [list(p) for p in ks.skeleton],
        "sigmas": None if ks.sigmas is None else [float(v) for v in np.asarray(ks.sigmas)],
        "upper_body": list(ks.upper_body),
        "lower_body": list(ks.lower_body),
    }
    if ks.joint_weights is not None:
        data["joint_weights"] = [float(v) for v in ks.joint_weights]
    return data


def make_card(cfg: PoseConfig, *, keypoint_set: KeypointSet | None = None) -> ModelCard:
    """The model card of a pose experiment: network, keypoint set (default the config's), crop size (H, W)
    and test settings."""
    keypoint_set = keypoint_set or resolve_keypoint_set(cfg.data)
    w, h = cfg.data.input_size
    return ModelCard(
        task="pose",
        model=cfg.model.name,
        num_outputs=keypoint_set.num_keypoints,
        labels=list(keypoint_set.names),
        overrides=dict(cfg.model.overrides),
        input_size=[h, w],
        mean=list(IMAGENET_MEAN),
        std=list(IMAGENET_STD),
        meta={"keypoint_set": keypoint_set_to_dict(keypoint_set)},
        test={k: getattr(cfg.test, k) for k in TEST_KEYS},
    )


def card_keypoint_set(card: ModelCard) -> KeypointSet:
    """The keypoint set a pose card carries (checked: one name per heatmap, valid flip pairs)."""
    data = card.require_meta("keypoint_set", dict, "the keypoint set: names, flip_pairs, skeleton, sigmas")
    ks = keypoint_set_from_dict(data, f"model card of {card.model}: meta.keypoint_set")
    if ks.num_keypoints != card.num_outputs:
        raise ValueError(
            f"model card of {card.model}: its keypoint set has {ks.num_keypoints} keypoints, "
            f"the head {card.num_outputs}"
        )
    return ks


def check_card(card: ModelCard) -> None:
    """Raise one ``ValueError`` naming what a pose card lacks (its keypoint set) before anything is built."""
    card_keypoint_set(card)


def default_card(name: str, input_size: tuple[int, int] | None = None) -> ModelCard:
    """The card of a bare pose model name: COCO's 17 keypoints, the paper's 256x192 crop, flip test on."""
    ks = load_keypoint_set("coco")
    return ModelCard(
        task="pose",
        model=name,
        num_outputs=ks.num_keypoints,
        labels=list(ks.names),
        input_size=list(input_size or default_input_size(name)),
        meta={"keypoint_set": keypoint_set_to_dict(ks)},
        test={"flip_test": True, "shift_heatmap": True, "dark": False},
    )


def card_test_config(card: ModelCard) -> PoseTestConfig:
    """The test-time settings a pose card carries (defaults for anything it does not say)."""
    return PoseTestConfig(**{k: v for k, v in card.test.items() if k in TEST_KEYS})


def model_from_card(card: ModelCard) -> nn.Module:
    """The pose network a card describes (weights not loaded); the card is checked first."""
    check_card(card)
    return create_model(card.model, num_joints=card.num_outputs, **card.builder_overrides())
