"""Keypoint sets: names, left/right flip pairs, skeleton, OKS sigmas and body halves of a pose task.

A keypoint set is the one piece of a pose task that changes between datasets, so it is data (a small
YAML file) rather than code. Shipped sets live in ``keypoint_sets/`` (``coco``, ``mpii``, ``crowdpose``,
``aic``, ``ochuman``, ``halpe``); a custom set is a YAML file with the same keys, where pairs, skeleton
edges and body groups name keypoints or give 0-based indices. ``from_annotations`` builds the set from a
COCO-style file's own ``categories[].keypoints`` / ``skeleton`` (see :func:`keypoint_set_from_coco`).

OKS sigmas are only needed to score with the COCO protocol (and OKS-NMS); a set may come without them,
and evaluation then stops with an error that says how to supply them (:meth:`KeypointSet.require_sigmas`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hrnet.atomic import write_text
from hrnet.labels import canonical_name, flip_pairs_from_names, flip_permutation

log = logging.getLogger("hrnet.pose")

BUILTIN_DIR = Path(__file__).with_name("keypoint_sets")
FROM_ANNOTATIONS = "from_annotations"
# shipped sets whose sigmas are real OKS constants, in the order a custom file's names are matched
# against them (mpii is left out: PCKh needs no sigmas, so its file only holds stand-ins)
SIGMA_SOURCES = ("coco", "ochuman", "crowdpose", "halpe", "aic")
_LOWER_BODY_WORDS = {"hip", "pelvis", "knee", "ankle", "foot", "toe", "heel", "leg", "thigh", "shin", "calf"}


class MissingSigmasError(ValueError):
    """A keypoint set without OKS sigmas was asked to take part in OKS-based evaluation."""


@dataclass
class KeypointSet:
    """Everything a pose pipeline needs to know about the keypoints it predicts."""

    name: str
    names: list[str]
    flip_pairs: list[tuple[int, int]]
    skeleton: list[tuple[int, int]]
    sigmas: np.ndarray | None
    upper_body: list[int]
    lower_body: list[int]
    joint_weights: np.ndarray | None = None
    sigmas_hint: str = ""  # why sigmas are missing and how to add them (for the evaluation error)

    @property
    def num_keypoints(self) -> int:
        """K, the number of keypoints (heatmap channels)."""
        return len(self.names)

    def flip_index(self) -> list[int]:
        """Permutation that maps each keypoint to its mirror image (itself when unpaired)."""
        return flip_permutation(self.num_keypoints, self.flip_pairs)

    def weights(self) -> np.ndarray:
        """Per-keypoint loss weights (ones when the set defines none)."""
        if self.joint_weights is None:
            return np.ones(self.num_keypoints, dtype=np.float32)
        return np.asarray(self.joint_weights, dtype=np.float32)

    def require_sigmas(self, purpose: str = "COCO-style (OKS) evaluation") -> np.ndarray:
        """The OKS sigmas, or :class:`MissingSigmasError` saying how to provide them."""
        if self.sigmas is None:
            hint = f" {self.sigmas_hint}" if self.sigmas_hint else ""
            raise MissingSigmasError(
                f"keypoint set {self.name!r} has no OKS sigmas, which {purpose} needs (one per keypoint).{hint} "
                "Write a keypoint-set YAML with 'sigmas' (docs/custom-data.md) and set data.keypoint_set to it, "
                "or train without evaluation (train.eval_every=0)"
            )
        return self.sigmas

    def to_dict(self) -> dict[str, Any]:
        """The YAML form (pairs and groups by name), which :func:`keypoint_set_from_dict` reads back."""
        names = self.names
        out: dict[str, Any] = {
            "name": self.name,
            "names": list(names),
            "flip_pairs": [[names[a], names[b]] for a, b in self.flip_pairs],
            "skeleton": [[names[a], names[b]] for a, b in self.skeleton],
        }
        if self.sigmas is not None:
            out["sigmas"] = [float(v) for v in self.sigmas]
        out["upper_body"] = [names[i] for i in self.upper_body]
        out["lower_body"] = [names[i] for i in self.lower_body]
        if self.joint_weights is not None:
            out["joint_weights"] = [float(v) for v in self.joint_weights]
        return out

    def save(self, path: str | Path) -> Path:
        """Write the set as YAML (atomically), e.g. next to the weights a training run writes."""
        header = "# keypoint set (0-based indices; pairs by name)\n"
        if self.sigmas is None:
            header += "# no OKS sigmas: add 'sigmas' (one per keypoint) to evaluate with the COCO protocol\n"
        write_text(path, header + yaml.safe_dump(self.to_dict(), sort_keys=False))
        return Path(path)


def _index(item: Any, names: list[str], where: str) -> int:
    """A keypoint reference (name or index) -> index, with an error naming the file and the entry."""
    if isinstance(item, bool):
        raise ValueError(f"{where}: {item!r} is not a keypoint name or index")
    if isinstance(item, int):
        if not 0 <= item < len(names):
            raise ValueError(f"{where}: index {item} out of range for {len(names)} keypoints (indices are 0-based)")
        return item
    if isinstance(item, str):
        if item not in names:
            raise ValueError(f"{where}: unknown keypoint {item!r}; known: {names}")
        return names.index(item)
    raise ValueError(f"{where}: {item!r} is not a keypoint name or index")


def _pairs(raw: Any, names: list[str], where: str) -> list[tuple[int, int]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError(f"{where}: expected a list of pairs, got {raw!r}")
    out = []
    for i, pair in enumerate(raw):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError(f"{where}[{i}]: expected a pair [a, b], got {pair!r}")
        a, b = (_index(p, names, f"{where}[{i}]") for p in pair)
        if a == b:
            raise ValueError(f"{where}[{i}]: pairs a keypoint with itself ({pair!r})")
        out.append((a, b))
    return out


def _check_flip_pairs(pairs: list[tuple[int, int]], names: list[str], source: str) -> None:
    used = [i for pair in pairs for i in pair]
    if len(set(used)) != len(used):
        raise ValueError(
            f"{source}: flip_pairs use a keypoint twice: {sorted({names[i] for i in used if used.count(i) > 1})}"
        )


def _sigmas(raw: Any, k: int, source: str) -> np.ndarray | None:
    if raw is None:
        return None
    try:
        sigmas = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: 'sigmas' must be numbers ({err})") from err
    if sigmas.shape != (k,):
        raise ValueError(f"{source}: 'sigmas' has {sigmas.size} values, expected {k} (one per keypoint)")
    if not np.all(np.isfinite(sigmas) & (sigmas > 0)):
        raise ValueError(f"{source}: 'sigmas' must all be finite and > 0")
    return sigmas


def keypoint_set_from_dict(data: dict, source: str = "keypoint set") -> KeypointSet:
    """Build and validate a :class:`KeypointSet` from a mapping (the parsed YAML); ``source`` names it in errors.

    ``sigmas`` may be left out (the set then cannot be scored with OKS; see :meth:`KeypointSet.require_sigmas`).
    """
    if not isinstance(data, dict):
        raise ValueError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    known = {"name", "names", "flip_pairs", "skeleton", "sigmas", "upper_body", "lower_body", "joint_weights"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{source}: unknown keys {unknown}; valid keys: {sorted(known)}")
    names = data.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{source}: 'names' must be a non-empty list of keypoint names")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{source}: duplicate keypoint names {dup}")
    k = len(names)
    flip_pairs = _pairs(data.get("flip_pairs"), names, f"{source}: flip_pairs")
    _check_flip_pairs(flip_pairs, names, source)
    skeleton = _pairs(data.get("skeleton"), names, f"{source}: skeleton")
    sigmas = _sigmas(data.get("sigmas"), k, source)
    groups = {}
    for key in ("upper_body", "lower_body"):
        raw = data.get(key) or []
        if not isinstance(raw, list):
            raise ValueError(f"{source}: '{key}' must be a list of keypoints")
        groups[key] = [_index(x, names, f"{source}: {key}") for x in raw]
    weights = data.get("joint_weights")
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float32)
        if weights.shape != (k,):
            raise ValueError(f"{source}: 'joint_weights' has {weights.size} values, expected {k}")
    hint = "" if sigmas is not None else f"{source} gives no 'sigmas'."
    return KeypointSet(
        name=str(data.get("name", source)),
        names=list(names),
        flip_pairs=flip_pairs,
        skeleton=skeleton,
        sigmas=sigmas,
        upper_body=groups["upper_body"],
        lower_body=groups["lower_body"],
        joint_weights=weights,
        sigmas_hint=hint,
    )


@cache
def _builtin_cached(name: str) -> KeypointSet:
    path = BUILTIN_DIR / f"{name}.yaml"
    return keypoint_set_from_dict(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


def _builtin(name: str) -> KeypointSet:
    """A fresh copy of a shipped set (callers may edit theirs without touching anyone else's)."""
    ks = _builtin_cached(name)
    return KeypointSet(
        ks.name,
        list(ks.names),
        list(ks.flip_pairs),
        list(ks.skeleton),
        None if ks.sigmas is None else ks.sigmas.copy(),
        list(ks.upper_body),
        list(ks.lower_body),
        None if ks.joint_weights is None else ks.joint_weights.copy(),
        ks.sigmas_hint,
    )


def builtin_keypoint_sets() -> list[str]:
    """Names accepted by :func:`load_keypoint_set` without a file."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


# ----------------------------------------------------------------------------------------------------
# keypoint sets from a COCO-style file's categories


def _matching_set(names: list[str]) -> KeypointSet | None:
    """The shipped set whose keypoints are exactly these names (any order), else the first that holds them all."""
    canon = {canonical_name(n) for n in names}
    sets = [_builtin(s) for s in SIGMA_SOURCES]
    for ks in sets:
        if {canonical_name(n) for n in ks.names} == canon:
            return ks
    for ks in sets:
        if canon <= {canonical_name(n) for n in ks.names}:
            return ks
    return None


def _skeleton_from_coco(raw: Any, k: int, source: str) -> list[tuple[int, int]]:
    """COCO ``skeleton`` (1-based by the format's definition) -> 0-based edges; a file holding index 0 is
    taken as already 0-based (some converters write that), anything else out of range is an error."""
    if raw is None or raw == []:
        return []
    if not isinstance(raw, list) or not all(isinstance(e, list | tuple) and len(e) == 2 for e in raw):
        raise ValueError(f"{source}: categories[].skeleton must be a list of [a, b] keypoint numbers")
    flat = [v for e in raw for v in e]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in flat):
        raise ValueError(f"{source}: categories[].skeleton must hold integers, got {raw!r}")
    lo, hi = min(flat), max(flat)
    if lo >= 1 and hi <= k:
        offset = 1
    elif lo == 0 and hi <= k - 1:
        offset = 0
        log.warning("%s: skeleton holds keypoint 0, so it is read as 0-based (COCO files use 1-based numbers)", source)
    else:
        raise ValueError(
            f"{source}: skeleton numbers run from {lo} to {hi}, but there are {k} keypoints "
            f"(expected 1..{k}, the COCO convention)"
        )
    edges = [(a - offset, b - offset) for a, b in raw]
    bad = [e for e in edges if e[0] == e[1]]
    if bad:
        raise ValueError(f"{source}: skeleton edge joins a keypoint with itself: {bad[0]}")
    return edges


def keypoint_categories(data: dict, source: str) -> list[dict]:
    """The categories of a COCO-style file that declare keypoints (all with the same list), validated."""
    cats = data.get("categories")
    if not isinstance(cats, list):
        raise ValueError(f"{source}: no 'categories' list, so no keypoint names to build a keypoint set from")
    with_kp = [c for c in cats if isinstance(c, dict) and c.get("keypoints")]
    if not with_kp:
        raise ValueError(
            f"{source}: no category declares 'keypoints' (names), so data.keypoint_set="
            f"{FROM_ANNOTATIONS} cannot work; name a shipped set or a YAML file instead"
        )
    first = with_kp[0]["keypoints"]
    for c in with_kp[1:]:
        if c["keypoints"] != first:
            raise ValueError(
                f"{source}: categories {with_kp[0].get('id')} and {c.get('id')} declare different "
                "keypoints; train one keypoint set at a time"
            )
    return with_kp


def keypoint_set_from_coco(data_or_path: dict | str | Path, source: str | None = None) -> KeypointSet:
    """The keypoint set a COCO-style file declares: ``categories[].keypoints`` (names), ``skeleton``
    (1-based in the file, 0-based here), flip pairs from left/right names, body halves from the names.

    Sigmas, joint weights and body halves come from a shipped set when the names are that set's (in any
    order or spelling, or a subset of it); otherwise the set has no sigmas and OKS evaluation asks for them.
    """
    if isinstance(data_or_path, str | Path):
        path = Path(data_or_path)
        source = source or str(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: annotation file not found (data.keypoint_set={FROM_ANNOTATIONS} "
                "reads the keypoint names from the training annotations)"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
    else:
        data = data_or_path
        source = source or "annotations"
    if not isinstance(data, dict):
        raise ValueError(f"{source}: not a COCO annotation file (top level must be a mapping)")
    cat = keypoint_categories(data, source)[0]
    names = cat["keypoints"]
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{source}: categories[].keypoints must be a list of keypoint names, got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{source}: duplicate keypoint names {sorted({n for n in names if names.count(n) > 1})}")
    k = len(names)
    skeleton = _skeleton_from_coco(cat.get("skeleton"), k, source)
    pairs = flip_pairs_from_names(names)
    known = _matching_set(names)
    sigmas = weights = None
    hint = ""
    if known is not None:
        by_name = {canonical_name(n): i for i, n in enumerate(known.names)}
        order = [by_name[canonical_name(n)] for n in names]
        sigmas = known.sigmas[order] if known.sigmas is not None else None
        weights = known.joint_weights[order] if known.joint_weights is not None else None
        upper_src = {canonical_name(known.names[i]) for i in known.upper_body}
        lower_src = {canonical_name(known.names[i]) for i in known.lower_body}
        upper = [i for i, n in enumerate(names) if canonical_name(n) in upper_src]
        lower = [i for i, n in enumerate(names) if canonical_name(n) in lower_src]
        log.info(
            "%s: keypoint set of %d keypoints from the file; sigmas of the shipped set %r (names match)",
            source,
            k,
            known.name,
        )
    else:
        lower = [i for i, n in enumerate(names) if set(canonical_name(n).split("_")) & _LOWER_BODY_WORDS]
        upper = [i for i in range(k) if i not in lower]
        hint = (
            f"Its {k} keypoint names (from {source}) match no shipped set "
            f"({', '.join(SIGMA_SOURCES)}), so no sigmas could be taken from one."
        )
        log.warning(
            "%s: keypoint set of %d keypoints from the file; names match no shipped set, so there are no "
            "OKS sigmas (needed for evaluation)",
            source,
            k,
        )
    _check_flip_pairs(pairs, list(names), source)
    return KeypointSet(
        name=str(cat.get("name") or "from_annotations"),
        names=list(names),
        flip_pairs=pairs,
        skeleton=skeleton,
        sigmas=sigmas,
        upper_body=upper,
        lower_body=lower,
        joint_weights=weights,
        sigmas_hint=hint,
    )


def load_keypoint_set(name_or_path: str | Path | KeypointSet, annotations: str | Path | None = None) -> KeypointSet:
    """A shipped set by name, a YAML file, or ``from_annotations`` (needs ``annotations``, a COCO-style file).

    Errors name the file and the bad key. Relative YAML paths are taken as given here (the working
    directory); configs resolve them against the config file's folder when they are loaded.
    """
    if isinstance(name_or_path, KeypointSet):
        return name_or_path
    text = str(name_or_path)
    if text == FROM_ANNOTATIONS:
        if annotations is None:
            raise ValueError(f"keypoint set {FROM_ANNOTATIONS!r} needs the annotation file it is read from")
        return keypoint_set_from_coco(annotations)
    if text.lower() in builtin_keypoint_sets():
        return _builtin(text.lower())
    path = Path(text)
    if not path.is_file():
        raise FileNotFoundError(
            f"keypoint set {text!r}: not a shipped set {builtin_keypoint_sets()}, not "
            f"{FROM_ANNOTATIONS!r}, and no such YAML file (a relative path in a config file is "
            "taken from the config file's folder)"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    ks = keypoint_set_from_dict(data, str(path))
    if "name" not in data:
        ks.name = path.stem
    return ks


COCO_KEYPOINTS = _builtin("coco")
MPII_KEYPOINTS = _builtin("mpii")
