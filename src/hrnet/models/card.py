"""Model cards: what a weights file is, stored inside it, so predict and export need nothing else.

A card is plain JSON kept in the safetensors header metadata under :data:`CARD_KEY`. It records the
task, the builder name and its overrides, the head size with its class / keypoint names, the input
size and normalisation, and the test-time settings. :func:`read_card` is the one reader; files
without a card (official ``.pth``, timm, mmpose, mmseg) give ``None`` and keep working with explicit
arguments. Task packages fill ``meta`` (keypoint set, palette, category ids) and ``test`` with their
own plain-data facts; this module never interprets them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from safetensors import safe_open

from hrnet.io import IMAGENET_MEAN, IMAGENET_STD
from hrnet.models.sources import resolve_source
from hrnet.registry import names as task_names
from hrnet.version import __version__

CARD_KEY = "hrnet.card"
CARD_FORMAT = 1


@dataclass
class ModelCard:
    """What a weights file holds; every field is JSON-serialisable plain data.

    ``model`` is the name the task's builder takes (``pose_hrnet_w32``, ``faster_rcnn_hrnet_w18``);
    ``overrides`` its keyword overrides; ``num_outputs`` the head size (keypoints or classes, without
    a detector's background); ``labels`` their names in head order; ``input_size`` is (H, W).
    """

    task: str
    model: str
    num_outputs: int
    labels: list[str]
    overrides: dict[str, Any] = field(default_factory=dict)
    input_size: list[int] | None = None
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    meta: dict[str, Any] = field(default_factory=dict)
    test: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    format: int = CARD_FORMAT

    def __post_init__(self) -> None:
        if self.task not in task_names():
            raise ValueError(f"model card: task must be one of {task_names()}, got {self.task!r}")
        if not isinstance(self.num_outputs, int) or self.num_outputs < 1:
            raise ValueError(f"model card: num_outputs must be a positive integer, got {self.num_outputs!r}")
        if len(self.labels) != self.num_outputs:
            raise ValueError(f"model card: {len(self.labels)} labels for a head of {self.num_outputs} outputs")
        if self.input_size is not None and len(self.input_size) != 2:
            raise ValueError(f"model card: input_size must be [H, W], got {self.input_size}")
        if not self.version:
            self.version = __version__

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON-ready)."""
        return json.loads(json.dumps(asdict(self)))

    def to_json(self) -> str:
        """The compact JSON string stored in file metadata."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "model card") -> ModelCard:
        """Build a card from a dict; unknown keys (from a newer version) are ignored, missing ones are errors."""
        if not isinstance(data, dict):
            raise ValueError(f"{origin}: model card must be a JSON object, got {type(data).__name__}")
        if int(data.get("format", CARD_FORMAT)) > CARD_FORMAT:
            raise ValueError(
                f"{origin}: model card format {data['format']} is newer than this hrnet "
                f"understands ({CARD_FORMAT}); upgrade hrnet"
            )
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("task", "model", "num_outputs", "labels") if k not in data]
        if missing:
            raise ValueError(f"{origin}: model card lacks {missing}")
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except (TypeError, ValueError) as err:
            raise ValueError(f"{origin}: {err}") from err

    def builder_overrides(self) -> dict[str, Any]:
        """``overrides`` as the builder takes them: JSON turned tuples into lists, and they are turned back."""
        return {k: tuple(v) if isinstance(v, list) else v for k, v in self.overrides.items()}

    def require_meta(self, key: str, kind: type, what: str) -> Any:
        """``meta[key]`` checked to be a ``kind``; a hand-made card without it gets one line naming the entry."""
        value = self.meta.get(key)
        if not isinstance(value, kind):
            raise ValueError(
                f"model card of {self.model}: a {self.task} card needs meta.{key} ({what}); "
                f"{'it is missing' if value is None else f'got {type(value).__name__}'}"
            )
        return value

    def metadata(self) -> dict[str, str]:
        """The safetensors metadata entry holding this card."""
        return {CARD_KEY: self.to_json()}


def card_from_metadata(metadata: dict[str, str] | None, origin: str = "weights") -> ModelCard | None:
    """The card in a string->string metadata mapping (safetensors header, ONNX metadata_props), or None."""
    if not metadata or CARD_KEY not in metadata:
        return None
    try:
        data = json.loads(metadata[CARD_KEY])
    except json.JSONDecodeError as err:
        raise ValueError(f"{origin}: model card is not valid JSON ({err})") from err
    return ModelCard.from_dict(data, origin)


def read_card(path: str | Path) -> ModelCard | None:
    """The model card of a weights file, or ``None`` when it has none (torch files never have one).

    Only the safetensors header is read, not the tensors, so this is cheap on large files.
    """
    path = resolve_source(path)
    if path.suffix != ".safetensors":
        return None
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata()
    except Exception as err:  # noqa: BLE001 - a corrupt header means the same thing to the user
        raise ValueError(f"{path}: not a readable safetensors file ({type(err).__name__}: {err})") from err
    return card_from_metadata(metadata, str(path))
