"""The network behind a facade's first two arguments (a model name, a carded weights file or a built
module, plus optional weights), written once for the four facades.

It lives in the models layer and takes the facade's own ``from_card`` builder, so a facade rebuilds
only networks of its own task and never reaches another task's code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from hrnet.models.card import ModelCard, read_card
from hrnet.models.sources import looks_like_weights, resolve_source
from hrnet.models.weights import load_weights

FromCard = Callable[[ModelCard], nn.Module]


def load_carded(src: str | Path, task: str, from_card: FromCard) -> nn.Module:
    """A carded weights file of ``task`` rebuilt by ``from_card`` and loaded strictly; ``model.card`` is set."""
    path = resolve_source(src)
    card = read_card(path)
    if card is None:
        raise ValueError(
            f"{src}: this weights file has no model card (official, timm, mmpose or mmseg files have none): "
            f"give the model name too, e.g. create_model(name) + load_weights(model, path)"
        )
    if card.task != task:
        raise ValueError(f"{src}: this is a {card.task!r} model ({card.model}), not a {task!r} model")
    model = _built(from_card, card, src)
    load_weights(model, path, on_head_mismatch="error")
    model.card = card
    return model.eval()


def _built(from_card: FromCard, card: ModelCard, src: str | Path) -> nn.Module:
    """``from_card(card)``, with a card the task refuses (a hand-made card lacking an entry) named by file."""
    try:
        return from_card(card)
    except ValueError as err:
        raise ValueError(f"{src}: {err}") from err


def resolve_model(
    task: str,
    source: str | Path | nn.Module,
    weights: str | Path | None,
    build: Callable[[str], nn.Module],
    from_card: FromCard,
) -> tuple[nn.Module, ModelCard | None]:
    """The network and its card (when it has one) for ``source`` and ``weights``.

    ``source`` is a carded weights file (or ``hf-hub:``), a model name, or a built module; ``weights``
    a file to load into a name or module. A carded file rebuilds its own network with ``from_card``
    (the card must be of ``task``); a name without a card is built by ``build(name)`` from the facade's
    explicit arguments. Loading is strict and a head of another size is an error, never a silent
    re-initialisation.
    """
    if isinstance(source, nn.Module):
        model, card = source, getattr(source, "card", None)
        if weights is not None:
            card = read_card(weights) or card
            load_weights(model, weights, on_head_mismatch="error")
        return model, card
    text = str(source)
    if weights is None and looks_like_weights(text):
        model = load_carded(text, task, from_card)
        return model, model.card
    card = read_card(weights) if weights is not None else None
    if card is not None:
        if card.task != task:
            raise ValueError(f"{weights}: this is a {card.task!r} model ({card.model}), not a {task!r} model")
        if card.model != text:
            raise ValueError(
                f"{weights}: the weights are a {card.model}, not a {text}; pass the file alone to use its own model"
            )
        model = _built(from_card, card, weights)
    else:
        model = build(text)
    if weights is not None:
        load_weights(model, weights, on_head_mismatch="error")
    return model, card
