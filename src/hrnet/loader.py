"""Any task's model by name or from its weights file, dispatched through the task registry.

:func:`load_model` rebuilds a trained model from its weights file alone (the card names the task);
:func:`create_model` builds any named network of any task; :func:`list_models` lists every task's names.
This module is above the task packages (like the CLI) and reaches them only through their specs
(:mod:`hrnet.registry`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from hrnet.models.card import ModelCard, read_card
from hrnet.models.resolve import load_carded
from hrnet.pretrained import entry, is_zoo_name, resolve_weights
from hrnet.registry import get as get_spec
from hrnet.registry import spec_of_model, specs


def model_from_card(card: ModelCard) -> nn.Module:
    """The (unloaded) network of ``card``, built by its task (which checks the card first)."""
    return get_spec(card.task).model_from_card.load()(card)


def load_model(src: str | Path, task: str | None = None) -> nn.Module:
    """Build the model described by the card of ``src`` and load its weights strictly; the card is kept as
    ``model.card``. ``src`` is any weights argument (:func:`hrnet.pretrained.resolve_weights`): a carded
    file, a zoo name (``pose_hrnet_w32.coco_256x192``), an ``http(s)://`` URL or ``hf-hub:org/repo[/file]``.
    ``task`` optionally asserts the task.

    A file without a card (official ``.pth``, timm, mmpose, mmseg) cannot say what it is: build the
    model with :func:`hrnet.create_model` and load it with :func:`hrnet.load_weights` instead.
    """
    path = resolve_weights(src)
    card = read_card(path)
    own = task if task is not None else (card.task if card is not None else "")
    return load_carded(path, own, model_from_card)


def create_model(name: str, pretrained: bool | str | Path = False, **kwargs: Any) -> nn.Module:
    """Any task's network by model name (``pose_hrnet_w32``, ``faster_rcnn_hrnet_w32``, ``hrnet_w48``).

    ``pretrained=True`` gives a pose, segmentation or detection name the published weights of its default
    tag (``pose_hrnet_w32`` -> ``pose_hrnet_w32.coco_256x192``, downloaded once, with its card), and a
    classification name the official ImageNet weights from the hub (fine-tuning keywords such as
    ``num_classes`` apply there). A zoo name (``pose_hrnet_w48.coco_384x288``, as ``name`` or as
    ``pretrained``) loads those weights; a file as ``pretrained`` is the task's training start.
    """
    spec = spec_of_model(name)
    zoo = name if is_zoo_name(name) else pretrained if is_zoo_name(pretrained) else None
    if zoo is None and pretrained is True and spec.name != "cls":
        zoo = entry(name).name  # the default tag; one line naming the models with weights when it has none
    if zoo is not None:
        if kwargs:
            raise ValueError(
                f"{zoo}: published weights come with their own network; build options {sorted(kwargs)} "
                "do not apply (fine-tune from them with a training config instead)"
            )
        model = load_model(zoo, task=spec.name)
        if not is_zoo_name(name) and model.card.model != name and entry(name).model != model.card.model:
            raise ValueError(f"{zoo} are weights of {model.card.model}, not of {name}")
        return model
    if pretrained is not False:
        kwargs["pretrained"] = pretrained
    return spec.create_model.load()(name, **kwargs)


def default_input_size(name: str) -> tuple[int, int]:
    """The (H, W) input of the paper's tables for a model name of any task."""
    return tuple(spec_of_model(name).default_input_size.load()(name))


def list_models(filter: str | None = None, task: str | None = None) -> list[str]:
    """Every task's published configurations by name (any other width works too), task by task; only
    those of ``task`` and those containing ``filter`` when given."""
    out = []
    for spec in specs() if task is None else (get_spec(task),):
        names = spec.list_models.load()()
        out += [n for n in names if spec_of_model(n) is spec and (filter is None or filter in n)]
    return out
