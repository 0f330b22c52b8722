"""Reading, normalising, saving and strictly loading weights.

Official HRNet files (pose, segmentation, classification), timm's, mmpose's and mmseg's differ only by
a wrapper dict, a key prefix and the name of the last layer. ``read_state_dict`` removes those
differences; ``load_weights`` then loads strictly and reports what does not fit by name and shape.
Files are read without unpickling code (``torch.load(weights_only=True)``) or with safetensors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from hrnet.atomic import atomic_path

log = logging.getLogger("hrnet")

CONTAINER_KEYS = ("state_dict", "model", "module", "model_state", "net")
PREFIXES = ("module.", "model.", "backbone.")
# source prefix -> our prefix, for the heads of other toolboxes
HEAD_MAPS = (
    ("keypoint_head.final_layer.", "final_layer."),  # mmpose 0.x top-down heatmap head
    ("head.final_layer.", "final_layer."),  # mmpose 1.x
    ("decode_head.convs.0.conv.", "last_layer.0."),  # mmseg FCNHead (kernel 1, one conv) = official last_layer
    ("decode_head.convs.0.bn.", "last_layer.1."),
    ("decode_head.conv_seg.", "last_layer.3."),
)
DROPPED_PREFIXES = ("loss.", "criterion.", "auxiliary_head.", "data_preprocessor.")


class LoadResult(NamedTuple):
    """Keys that the model has and the source lacks (``missing``), and the reverse (``unexpected``)."""

    missing: list[str]
    unexpected: list[str]


def _read_file(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any decode failure means the same thing to the user
        raise ValueError(f"{path}: not a readable weights file ({type(err).__name__}: {err})") from err


def _unwrap(obj: Any, origin: str) -> dict[str, Tensor]:
    """Descend through checkpoint containers until a flat name -> tensor mapping is found."""
    for _ in range(4):
        if isinstance(obj, nn.Module):
            obj = obj.state_dict()
        if not isinstance(obj, Mapping):
            raise ValueError(f"{origin}: expected a state dict, got {type(obj).__name__}")
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            return dict(obj)
        inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj.get(k), (Mapping, nn.Module))), None)
        if inner is None:
            break
        obj = inner
    tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)} if isinstance(obj, Mapping) else {}
    if not tensors:
        raise ValueError(f"{origin}: no tensors found (keys: {sorted(map(str, obj))[:8]})")
    return tensors


def normalize_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Strip wrapper prefixes, map other toolboxes' head names, drop training-only entries."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        for src, dst in HEAD_MAPS:
            if key.startswith(src):
                key = dst + key[len(src):]
                break
        if key.startswith(DROPPED_PREFIXES):
            continue
        out[key] = value
    # mmseg's head conv has no bias (a BN follows); the official one has a bias: zero is the same function
    if "last_layer.0.weight" in out and "last_layer.0.bias" not in out:
        w = out["last_layer.0.weight"]
        out["last_layer.0.bias"] = torch.zeros(w.shape[0], dtype=w.dtype)
    return out


def read_state_dict(src: str | Path | Mapping[str, Any] | nn.Module) -> dict[str, Tensor]:
    """A flat, normalised state dict from a file (safetensors or torch) or an in-memory object."""
    origin = str(src) if isinstance(src, (str, Path)) else "state dict"
    obj = _read_file(Path(src)) if isinstance(src, (str, Path)) else src
    return normalize_keys(_unwrap(obj, origin))


def _describe(keys: Sequence[str], limit: int = 4) -> str:
    """'73 keys in stage4 (67), last_layer (6): stage4.0.fuse_layers..., ...': where, then examples."""
    groups: dict[str, int] = {}
    for k in keys:
        groups[k.split(".")[0]] = groups.get(k.split(".")[0], 0) + 1
    where = ", ".join(f"{g} ({n})" for g, n in groups.items())
    shown = ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "")
    return f"{len(keys)} in {where}: {shown}"


HEAD_PREFIXES = ("classifier.", "final_layer.", "last_layer.")


def mismatched_head_keys(model: nn.Module, state: Mapping[str, Tensor],
                         heads: Sequence[str] = HEAD_PREFIXES) -> tuple[str, ...]:
    """Keys of the output layers (``heads``) whose shapes differ between ``state`` and ``model``.

    These are what changes with the class or keypoint count; passing them as ``exclude`` to
    :func:`load_weights` keeps the model's fresh head and loads everything else strictly.
    """
    own = model.state_dict()
    return tuple(k for k in state if k.startswith(tuple(heads)) and k in own and state[k].shape != own[k].shape)


def load_weights(model: nn.Module, src: str | Path | Mapping[str, Any] | nn.Module, strict: bool = True,
                 exclude: Sequence[str] = ()) -> LoadResult:
    """Load ``src`` into ``model``; strict by default, with errors that name keys and shapes.

    ``exclude`` lists key prefixes to leave out on both sides (e.g. ``("final_layer.",)`` to keep a
    freshly initialised head). A missing ``num_batches_tracked`` is filled from the model. Shape
    mismatches always raise (they mean another width or task); in non-strict mode missing and
    unexpected keys are returned instead of raised.
    """
    origin = str(src) if isinstance(src, (str, Path)) else "state dict"
    state = read_state_dict(src)
    excluded = tuple(exclude)
    if excluded:
        state = {k: v for k, v in state.items() if not k.startswith(excluded)}
    own = model.state_dict()
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value.clone()
    missing = [k for k in own if k not in state and not k.startswith(excluded)]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in state if k in own and state[k].shape != own[k].shape]
    if mismatched:
        detail = "; ".join(f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in mismatched[:5])
        more = f" (and {len(mismatched) - 5} more)" if len(mismatched) > 5 else ""
        raise ValueError(f"{origin}: weights do not fit this model (another width, task or class count?): "
                         f"{detail}{more}")
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing keys: {_describe(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_describe(unexpected)}")
        raise ValueError(f"{origin}: weights do not match the model ({'; '.join(parts)})")
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return LoadResult(missing, unexpected)


def save_weights(model_or_state: nn.Module | Mapping[str, Tensor], path: str | Path,
                 metadata: Mapping[str, str] | None = None) -> Path:
    """Write weights atomically: safetensors for ``.safetensors`` paths (with optional string
    ``metadata``), a plain torch file otherwise."""
    path = Path(path)
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    # clone: safetensors refuses tensors that share storage
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(tmp), metadata={"format": "pt", **(metadata or {})})
        else:
            torch.save(state, tmp)
    return path


def hub_download(repo_id: str, filename: str = "model.safetensors") -> Path:
    """Download (or reuse from the local cache) one file of a Hugging Face hub repository."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as err:
        raise ImportError("pretrained=True needs huggingface_hub: pip install 'hrnet[hub]'") from err
    return Path(hf_hub_download(repo_id=repo_id, filename=filename))


def load_pretrained(model: nn.Module, name: str, pretrained: bool | str | Path) -> LoadResult:
    """ImageNet weights for ``model``: a local file, or the official ones from the hub for ``name``.

    Heads that the file cannot fill (a classifier with another class count, task heads on a
    classification file, feature extractors) are reported and left as initialised.
    """
    from hrnet.models.zoo import HUB_REPOS, _split

    task, backbone = _split(name)
    if pretrained is True:
        if backbone not in HUB_REPOS:
            raise ValueError(f"no published ImageNet weights for {backbone!r}; available: {sorted(HUB_REPOS)}")
        path = hub_download(HUB_REPOS[backbone])
    else:
        path = Path(pretrained)
    state = read_state_dict(path)
    head_mismatch = mismatched_head_keys(model, state)
    if head_mismatch:
        log.warning("%s: %s have another output size; re-initialised", path, ", ".join(head_mismatch))
    strict = not task and not head_mismatch and not hasattr(model, "feature_info")
    result = load_weights(model, state, strict=strict, exclude=head_mismatch)
    if not strict and result.missing:
        log.info("%s: %s model tensors not in the file (kept as initialised)", path, _describe(result.missing, 4))
    return result
