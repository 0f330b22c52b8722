"""Building the pose network of a config, its official initialisation, and loading pose weights."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from hrnet.pose.config import PoseConfig
from hrnet.pose.keypoints import KeypointSet, load_keypoint_set

log = logging.getLogger("hrnet.pose")


def load_pose_weights(model: nn.Module, path: str | Path, strict: bool = True) -> Any:
    """Load pose or ImageNet weights into ``model``; a keypoint head of another size is re-initialised.

    When the file's ``final_layer`` predicts another number of keypoints than the model (a custom keypoint
    set), the head is left as initialised and a warning says so. Non-strict loads log what was not loaded.
    """
    from hrnet.models.weights import load_weights, mismatched_head_keys, read_state_dict

    state = read_state_dict(path)
    exclude = mismatched_head_keys(model, state, ("final_layer.",))
    if exclude:
        log.warning("%s: keypoint head predicts %d keypoints, the model %d (num_joints changed): "
                    "final_layer re-initialised", path, state["final_layer.weight"].shape[0],
                    model.final_layer.out_channels)
    result = load_weights(model, state, strict=strict and not exclude, exclude=exclude)
    if result.missing or result.unexpected:
        log.info("%s: %d model tensors not in the file (kept as initialised, e.g. %s); %d file tensors unused "
                 "(e.g. %s)", path, len(result.missing), result.missing[:3], len(result.unexpected),
                 result.unexpected[:3])
    return result


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


def build_model(cfg: PoseConfig, keypoint_set: KeypointSet | None = None, pretrained: bool = True) -> nn.Module:
    """The configured pose network with one heatmap per keypoint; ``model.pretrained`` is loaded
    non-strictly when ``pretrained`` (training starts), not when other weights follow (evaluation)."""
    from hrnet.models.zoo import create_model

    ks = keypoint_set or load_keypoint_set(cfg.data.keypoint_set)
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.model.overrides.items()}
    if not cfg.model.name.startswith("pose_"):
        raise ValueError(f"model.name must be a pose model (pose_hrnet_w32, ...), got {cfg.model.name!r}")
    model = create_model(cfg.model.name, num_joints=ks.num_keypoints, **overrides)
    init_pose_weights(model)
    if pretrained and cfg.model.pretrained:
        load_pose_weights(model, cfg.model.pretrained, strict=False)
    return model
