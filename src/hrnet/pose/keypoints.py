"""Keypoint sets: names, left/right flip pairs, skeleton, OKS sigmas and body halves of a pose task.

A keypoint set is the one piece of a pose task that changes between datasets, so it is data (a small
YAML file) rather than code. COCO (17) and MPII (16) ship in ``keypoint_sets/``; a custom set is a YAML
file with the same keys. Pairs, skeleton edges and body groups may name keypoints or give indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

BUILTIN_DIR = Path(__file__).with_name("keypoint_sets")


@dataclass
class KeypointSet:
    """Everything a pose pipeline needs to know about the keypoints it predicts."""

    name: str
    names: list[str]
    flip_pairs: list[tuple[int, int]]
    skeleton: list[tuple[int, int]]
    sigmas: np.ndarray
    upper_body: list[int]
    lower_body: list[int]
    joint_weights: np.ndarray | None = None

    @property
    def num_keypoints(self) -> int:
        """K, the number of keypoints (heatmap channels)."""
        return len(self.names)

    def flip_index(self) -> list[int]:
        """Permutation that maps each keypoint to its mirror image (itself when unpaired)."""
        perm = list(range(self.num_keypoints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def weights(self) -> np.ndarray:
        """Per-keypoint loss weights (ones when the set defines none)."""
        if self.joint_weights is None:
            return np.ones(self.num_keypoints, dtype=np.float32)
        return np.asarray(self.joint_weights, dtype=np.float32)


def _index(item: Any, names: list[str], where: str) -> int:
    """A keypoint reference (name or index) -> index, with an error naming the file and the entry."""
    if isinstance(item, bool):
        raise ValueError(f"{where}: {item!r} is not a keypoint name or index")
    if isinstance(item, int):
        if not 0 <= item < len(names):
            raise ValueError(f"{where}: index {item} out of range for {len(names)} keypoints")
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


def keypoint_set_from_dict(data: dict, source: str = "keypoint set") -> KeypointSet:
    """Build and validate a :class:`KeypointSet` from a mapping (the parsed YAML); ``source`` names it in errors."""
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
    used = [i for pair in flip_pairs for i in pair]
    if len(set(used)) != len(used):
        raise ValueError(f"{source}: flip_pairs use a keypoint twice: {[names[i] for i in used if used.count(i) > 1]}")
    skeleton = _pairs(data.get("skeleton"), names, f"{source}: skeleton")
    if "sigmas" not in data:
        raise ValueError(f"{source}: 'sigmas' (one OKS constant per keypoint) is required")
    try:
        sigmas = np.asarray(data["sigmas"], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: 'sigmas' must be numbers ({err})") from err
    if sigmas.shape != (k,):
        raise ValueError(f"{source}: 'sigmas' has {sigmas.size} values, expected {k} (one per keypoint)")
    if not np.all(sigmas > 0):
        raise ValueError(f"{source}: 'sigmas' must all be > 0")
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
    return KeypointSet(name=str(data.get("name", source)), names=list(names), flip_pairs=flip_pairs,
                       skeleton=skeleton, sigmas=sigmas, upper_body=groups["upper_body"],
                       lower_body=groups["lower_body"], joint_weights=weights)


@cache
def _builtin(name: str) -> KeypointSet:
    path = BUILTIN_DIR / f"{name}.yaml"
    return keypoint_set_from_dict(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


def builtin_keypoint_sets() -> list[str]:
    """Names accepted by :func:`load_keypoint_set` without a file."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def load_keypoint_set(name_or_path: str | Path | KeypointSet) -> KeypointSet:
    """A built-in set by name (``coco``, ``mpii``) or a YAML file; errors name the file and the bad key."""
    if isinstance(name_or_path, KeypointSet):
        return name_or_path
    text = str(name_or_path)
    if text.lower() in builtin_keypoint_sets():
        return _builtin(text.lower())
    path = Path(text)
    if not path.is_file():
        raise FileNotFoundError(f"keypoint set {text!r}: not a built-in set {builtin_keypoint_sets()} "
                                f"and no such YAML file")
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
