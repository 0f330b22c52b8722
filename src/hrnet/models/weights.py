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

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch import Tensor, nn

from hrnet.atomic import atomic_path, write_bytes
from hrnet.models.card import ModelCard
from hrnet.models.sources import resolve_source

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
    """Keys that the model has and the source lacks (``missing``), the reverse (``unexpected``), and the
    head keys left freshly initialised because their size differed (``reinitialized``)."""

    missing: list[str]
    unexpected: list[str]
    reinitialized: tuple[str, ...] = ()


# numeric NumPy dtypes whose arrays mmpose 1.x / mmengine checkpoints keep in ``meta`` (sigmas, colours,
# keypoint weights: float32 and uint8 in practice); object, string and void dtypes stay refused
NUMPY_META_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
NUMPY_META_DTYPES += ("float16", "float32", "float64")


def numpy_safe_globals() -> list[Any]:
    """What ``torch.load(weights_only=True)`` needs to rebuild plain NumPy arrays and scalars, and nothing
    more: the array and scalar reconstructors, ``ndarray``, ``dtype`` and the numeric dtype classes.

    The reconstructors are taken from NumPy's own ``__reduce__`` (no private module path) and listed
    under both module names files carry: ``numpy.core.multiarray`` (written by NumPy 1.x, i.e. every
    published mmpose 1.x file) and ``numpy._core.multiarray`` (NumPy 2). Torch < 2.6 takes no alias
    names, so there only the running NumPy's own names are allowed."""
    reconstruct = np.zeros(1).__reduce__()[0]
    scalar = np.float32(0).__reduce__()[0]
    found: list[Any] = [np.ndarray, np.dtype, *(type(np.dtype(name)) for name in NUMPY_META_DTYPES)]
    if torch.torch_version.TorchVersion(torch.__version__) < (2, 6):
        return [reconstruct, scalar, *found]
    for fn in (reconstruct, scalar):
        found += [(fn, f"numpy.{core}.multiarray.{fn.__name__}") for core in ("core", "_core")]
    return found


def _read_file(path: Path) -> Any:
    """The object in a weights file: safetensors, or a torch file (zip or legacy format, ``.pth.tar``
    included) unpickled with ``weights_only`` and plain NumPy arrays allowed (mmpose 1.x ``meta``)."""
    path = resolve_source(path)
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path), device="cpu")
        with torch.serialization.safe_globals(numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any decode failure means the same thing to the user
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        if "weights_only" in str(err) or "Weights only" in first:  # pickled objects beyond tensors: refused
            first = "it is not a weights file, or it holds pickled code, which is never loaded"
        raise ValueError(f"{path}: not a readable weights file ({type(err).__name__}: {first[:200]})") from err


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
                    key, changed = key[len(prefix) :], True
        for src, dst in HEAD_MAPS:
            if key.startswith(src):
                key = dst + key[len(src) :]
                break
        if key.startswith(DROPPED_PREFIXES):
            continue
        out[key] = value
    # mmseg's head conv has no bias (a BN follows); the official one has a bias: zero is the same function
    if "last_layer.0.weight" in out and "last_layer.0.bias" not in out:
        w = out["last_layer.0.weight"]
        out["last_layer.0.bias"] = torch.zeros(w.shape[0], dtype=w.dtype)
    return out


def read_raw_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a weights file with containers unwrapped but keys as stored (for other libraries'
    models, e.g. torchvision detectors, whose own keys must not be renamed)."""
    return _unwrap(_read_file(Path(path)), str(path))


def read_state_dict(src: str | Path | Mapping[str, Any] | nn.Module) -> dict[str, Tensor]:
    """A flat, normalised state dict from a file (safetensors or torch) or an in-memory object."""
    origin = str(src) if isinstance(src, (str, Path)) else "state dict"
    obj = _read_file(Path(src)) if isinstance(src, (str, Path)) else src
    return normalize_keys(_unwrap(obj, origin))


def describe_keys(keys: Sequence[str], limit: int = 4) -> str:
    """'73 keys in stage4 (67), last_layer (6): stage4.0.fuse_layers..., ...': where, then examples."""
    groups: dict[str, int] = {}
    for k in keys:
        groups[k.split(".")[0]] = groups.get(k.split(".")[0], 0) + 1
    where = ", ".join(f"{g} ({n})" for g, n in groups.items())
    shown = ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "")
    return f"{len(keys)} in {where}: {shown}"


HEAD_PREFIXES = ("classifier.", "final_layer.", "last_layer.")
HEAD_POLICIES = ("error", "reinit")


class HeadMismatchError(ValueError):
    """The file's output layer has another size than the model's (another class or keypoint count)."""


def head_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Key prefixes of the layers whose size follows the class / keypoint count.

    Task models declare them (``head_prefixes`` class attribute, see ``task_models``); other modules
    fall back to the official names of the three zoo heads.
    """
    return tuple(getattr(model, "head_prefixes", HEAD_PREFIXES))


def mismatched_head_keys(
    model: nn.Module, state: Mapping[str, Tensor], heads: Sequence[str] | None = None
) -> tuple[str, ...]:
    """Keys of the output layers whose output count differs between ``state`` and ``model``: what changes
    with the class or keypoint count (passing them as ``exclude`` keeps the model's fresh head). A head
    whose *input* size differs belongs to another width: that is not a head mismatch."""
    own = model.state_dict()
    prefixes = tuple(heads) if heads is not None else head_prefixes(model)
    return tuple(
        k
        for k in state
        if k.startswith(prefixes)
        and k in own
        and state[k].shape != own[k].shape
        and state[k].shape[1:] == own[k].shape[1:]
    )


def _head_sizes(model: nn.Module, state: Mapping[str, Tensor], keys: Sequence[str]) -> tuple[int, int]:
    """(file, model) output counts of the first mismatching head tensor."""
    own = model.state_dict()
    key = next((k for k in keys if k.endswith("weight")), keys[0])
    return int(state[key].shape[0]), int(own[key].shape[0])


def load_weights(
    model: nn.Module,
    src: str | Path | Mapping[str, Any] | nn.Module,
    strict: bool = True,
    exclude: Sequence[str] = (),
    on_head_mismatch: str = "error",
) -> LoadResult:
    """Load ``src`` into ``model``; strict by default, with errors that name keys and shapes.

    ``on_head_mismatch`` decides what happens when the output layer has another size (another class
    or keypoint count): ``"error"`` (inference: a head that does not fit is never silently replaced)
    raises :class:`HeadMismatchError` naming both sizes; ``"reinit"`` (fine-tuning) keeps the model's
    fresh head, loads everything else and logs what it re-initialised (listed in ``reinitialized``).
    ``exclude`` lists key prefixes to leave out on both sides. A missing ``num_batches_tracked`` is
    filled from the model. Other shape mismatches always raise (another width or task); in
    non-strict mode missing and unexpected keys are returned instead of raised.
    """
    if on_head_mismatch not in HEAD_POLICIES:
        raise ValueError(f"on_head_mismatch must be one of {HEAD_POLICIES}, got {on_head_mismatch!r}")
    origin = str(src) if isinstance(src, (str, Path)) else "state dict"
    state = read_state_dict(src)
    # a model whose own keys the normalisation would change (detectors: "backbone.body...") maps them back
    convert = getattr(model, "convert_state_dict", None)
    if callable(convert):
        state = convert(state)
    excluded = tuple(exclude)
    if excluded:
        state = {k: v for k, v in state.items() if not k.startswith(excluded)}
    heads = mismatched_head_keys(model, state)
    if heads:
        theirs, ours = _head_sizes(model, state, heads)
        unit = getattr(model, "head_unit", "outputs")
        if on_head_mismatch == "error":
            key = next((k for k in heads if k.endswith("weight")), heads[0])
            shapes = f"{key}: file {tuple(state[key].shape)} vs model {tuple(model.state_dict()[key].shape)}"
            raise HeadMismatchError(
                f"{origin}: the weights predict {theirs} {unit} but the model has {ours} ({shapes}); "
                f"build the model with {theirs} {unit} (a weights file with a model card does this by itself), "
                f"or fine-tune from it (model.pretrained) to re-initialise the head"
            )
        log.warning(
            "%s: the weights predict %d %s, the model %d: %s re-initialised",
            origin,
            theirs,
            unit,
            ours,
            ", ".join(sorted({k.rsplit(".", 1)[0] for k in heads})),
        )
        excluded += heads
        state = {k: v for k, v in state.items() if k not in heads}
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
        raise ValueError(f"{origin}: weights do not fit this model (another width or task?): {detail}{more}")
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing keys: {describe_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {describe_keys(unexpected)}")
        raise ValueError(f"{origin}: weights do not match the model ({'; '.join(parts)})")
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return LoadResult(missing, unexpected, heads)


def save_weights(
    model_or_state: nn.Module | Mapping[str, Tensor],
    path: str | Path,
    metadata: Mapping[str, str] | None = None,
    card: ModelCard | None = None,
) -> Path:
    """Write weights atomically: safetensors for ``.safetensors`` paths (with optional string
    ``metadata`` and the model ``card``), a plain torch file otherwise (which cannot hold a card)."""
    path = Path(path)
    if card is not None:
        if path.suffix != ".safetensors":
            raise ValueError(f"{path}: a model card needs a .safetensors file")
        metadata = {**(metadata or {}), **card.metadata()}
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    # clone: safetensors refuses tensors that share storage
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    if path.suffix == ".safetensors":
        # bytes through write_bytes: safetensors' save_file recreates the file owner-only (0600)
        write_bytes(path, save(state, metadata={"format": "pt", **(metadata or {})}))
    else:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    return path
