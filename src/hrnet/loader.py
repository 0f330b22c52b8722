"""``hrnet.load_model``: a trained model back from its weights file alone, through the model card.

The card names the task; each task's ``model.py`` knows how to build its networks
(``model_from_card``). This module is above the task packages (like the CLI), so importing a task
here by name is the one dispatch point; the tasks themselves never import each other.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path

from torch import nn

from hrnet.models.card import ModelCard, read_card
from hrnet.models.weights import load_weights, resolve_source

TASK_MODELS = {
    "pose": "hrnet.pose.model",
    "seg": "hrnet.segmentation.model",
    "cls": "hrnet.classification.model",
    "det": "hrnet.detection.model",
}


def load_model(src: str | Path, task: str | None = None) -> nn.Module:
    """Build the model described by the card of ``src`` (a file or ``hf-hub:org/repo[/file]``) and load
    its weights strictly; the card is kept as ``model.card``. ``task`` optionally asserts the task.

    A file without a card (official ``.pth``, timm, mmpose, mmseg) cannot say what it is: build the
    model with :func:`hrnet.create_model` and load it with :func:`hrnet.load_weights` instead.
    """
    path = resolve_source(src)
    card = read_card(path)
    if card is None:
        raise ValueError(
            f"{src}: this weights file has no model card (official, timm, mmpose or mmseg files "
            f"have none): give the model name too, e.g. create_model(name) + load_weights(model, path)"
        )
    if task is not None and card.task != task:
        raise ValueError(f"{src}: this is a {card.task!r} model ({card.model}), not a {task!r} model")
    model = model_from_card(card)
    load_weights(model, path, on_head_mismatch="error")
    model.card = card
    return model.eval()


def model_from_card(card: ModelCard) -> nn.Module:
    """The (unloaded) network of ``card``, built by its task's ``model_from_card``."""
    return import_module(TASK_MODELS[card.task]).model_from_card(card)


def _looks_like_file(text: str) -> bool:
    return (
        text.startswith("hf-hub:")
        or Path(text).suffix in (".safetensors", ".pth", ".pt", ".bin")
        or Path(text).is_file()
    )


def resolve_model(
    task: str, source: str | Path | nn.Module, weights: str | Path | None, build: Callable[[str], nn.Module]
) -> tuple[nn.Module, ModelCard | None]:
    """The network behind a facade's first two arguments, and its card when it has one.

    ``source`` is a carded weights file (or ``hf-hub:``), a model name, or a built module; ``weights``
    a file to load into a name or module. A carded file rebuilds its own network (the card must be of
    ``task``); a name without a card is built by ``build(name)`` from the facade's explicit arguments.
    Loading is strict and a head of another size is an error, never a silent re-initialisation.
    """
    if isinstance(source, nn.Module):
        model, card = source, getattr(source, "card", None)
        if weights is not None:
            card = read_card(weights) or card
            load_weights(model, weights, on_head_mismatch="error")
        return model, card
    text = str(source)
    if weights is None and _looks_like_file(text):
        model = load_model(text, task=task)
        return model, model.card
    card = read_card(weights) if weights is not None else None
    if card is not None:
        if card.task != task:
            raise ValueError(f"{weights}: this is a {card.task!r} model ({card.model}), not a {task!r} model")
        if card.model != text:
            raise ValueError(
                f"{weights}: the weights are a {card.model}, not a {text}; pass the file alone to use its own model"
            )
        model = model_from_card(card)
    else:
        model = build(text)
    if weights is not None:
        load_weights(model, weights, on_head_mismatch="error")
    return model, card
