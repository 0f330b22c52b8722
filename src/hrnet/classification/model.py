"""Building HRNet-Wx-C classifiers and loading their weights with a class-count check.

A weights file whose classifier has another class count than the model is either an error (naming
both counts and the way out), or, when the caller asked for a new class count, the classifier is left
freshly initialised and a message says so: the usual way to fine-tune ImageNet weights on a new set.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from hrnet.classification.config import ClsModelConfig

log = logging.getLogger(__name__)
HUB = "hub"


def weights_num_classes(state: Mapping[str, Tensor]) -> int | None:
    """The class count of a (normalised) classification state dict, or None if it has no classifier."""
    weight = state.get("classifier.weight")
    return int(weight.shape[0]) if weight is not None else None


def load_classifier_weights(model: nn.Module, src: str | Path | Mapping[str, Any],
                            reinit_classifier: bool = False, origin: str | None = None) -> str | None:
    """Load ``src`` strictly into a classifier; returns the message when the classifier was re-initialised.

    A class-count mismatch raises ``ValueError`` unless ``reinit_classifier`` is set; then every other
    tensor is loaded strictly and ``classifier.*`` keeps its fresh initialisation. ``origin`` names the
    source in messages (default: the path).
    """
    from hrnet.models.weights import load_weights, mismatched_head_keys, read_state_dict

    origin = origin or (str(src) if isinstance(src, (str, Path)) else "state dict")
    state = read_state_dict(src)
    exclude = mismatched_head_keys(model, state, ("classifier.",))
    if not exclude:
        load_weights(model, state)
        return None
    theirs, ours = weights_num_classes(state), model.classifier.out_features
    if not reinit_classifier:
        raise ValueError(f"{origin}: the checkpoint classifies {theirs} classes but the model has {ours}; "
                         f"build the model with num_classes={theirs} to use it as it is, or pass a "
                         f"num_classes override (model.num_classes) to re-initialise the classifier")
    load_weights(model, state, exclude=exclude)
    message = (f"{origin}: the checkpoint classifies {theirs} classes, the model {ours}: "
               f"classifier re-initialised, all other weights loaded")
    log.warning(message)
    return message


def build_model(cfg: ClsModelConfig, reinit_classifier: bool = True) -> nn.Module:
    """The classifier of a model config, with ``cfg.pretrained`` ("hub" or a file) loaded when set."""
    from hrnet.models.zoo import create_model

    if cfg.pretrained == HUB:
        return create_model(cfg.name, pretrained=True, num_classes=cfg.num_classes, head=cfg.head,
                            **cfg.overrides())
    model = create_model(cfg.name, num_classes=cfg.num_classes, head=cfg.head, **cfg.overrides())
    if cfg.pretrained:
        load_classifier_weights(model, cfg.pretrained, reinit_classifier=reinit_classifier)
    return model
