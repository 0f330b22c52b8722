"""Label bookkeeping that every task shares: left/right flip permutations and the class-count check.

A horizontal flip turns a left arm into a right one, so a mirrored prediction must have its left/right
channels (keypoints, parsing classes) swapped back before it is averaged with the plain one, and a
mirrored training sample must have its labels swapped the same way. Pose, segmentation and detection
all describe the swap as pairs of indices; :func:`flip_permutation` is the one place that turns pairs
into a channel order, and :func:`flip_pairs_from_names` the one place that finds pairs from names
(``left_eye`` / ``right_eye``, ``LShoulder`` / ``RShoulder``), so the tasks cannot disagree on either.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

_SIDE_TOKENS = {"l": "left", "lt": "left", "r": "right", "rt": "right"}
_SWAP = {"left": "right", "right": "left"}


def flip_permutation(num_channels: int, pairs: Sequence[Sequence[int]]) -> list[int]:
    """Channel order of a mirrored prediction: ``perm[c]`` is the channel that ``c`` becomes under a flip.

    Channels in no pair map to themselves. A pair outside ``0..num_channels-1`` is a ``ValueError``, since a
    silently ignored pair would leave a left/right swap undone.
    """
    perm = list(range(num_channels))
    for pair in pairs:
        a, b = (int(v) for v in pair)
        if not (0 <= a < num_channels and 0 <= b < num_channels):
            raise ValueError(f"flip pair ({a}, {b}) is outside the {num_channels} channels")
        perm[a], perm[b] = b, a
    return perm


def inverse_permutation(perm: Sequence[int]) -> list[int]:
    """``inv`` with ``inv[perm[c]] == c``: the order that puts permuted channels back.

    Pairs make a permutation its own inverse, but a ``flip_perm`` given by hand need not be made of pairs.
    Anything that is not a permutation of ``0..len(perm)-1`` is a ``ValueError``.
    """
    values = [int(v) for v in perm]
    if sorted(values) != list(range(len(values))):
        raise ValueError(f"not a permutation of 0..{len(values) - 1}: {values}")
    inverse = [0] * len(values)
    for c, target in enumerate(values):
        inverse[target] = c
    return inverse


def canonical_name(name: str) -> str:
    """``LShoulder``, ``left-shoulder``, ``Left Shoulder``, ``l_shoulder`` -> ``left_shoulder``.

    Used to find left/right partners and to recognise a known keypoint set in other spellings.
    """
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    s = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", s)
    tokens = [t for t in re.split(r"[\s_\-.]+", s.lower()) if t]
    return "_".join(_SIDE_TOKENS.get(t, t) for t in tokens)


def _mirror(canonical: str) -> str | None:
    tokens = canonical.split("_")
    if not any(t in _SWAP for t in tokens):
        return None
    return "_".join(_SWAP.get(t, t) for t in tokens)


def flip_pairs_from_names(names: Sequence[str]) -> list[tuple[int, int]]:
    """Left/right pairs found by name, ``(left index, right index)`` in the order of the left names.

    A name with a ``left`` word (or an ``l``/``L`` prefix, see :func:`canonical_name`) pairs with the name
    that reads the same with ``right``; names without a twin stay unpaired.
    """
    canon = [canonical_name(n) for n in names]
    index = {c: i for i, c in enumerate(canon)}
    pairs = []
    for i, c in enumerate(canon):
        twin = _mirror(c)
        j = index.get(twin) if twin is not None else None
        if j is not None and "left" in c.split("_") and i != j:
            pairs.append((i, j))
    return pairs


def check_num_classes(source: str | Path, requested: int | None, actual: int, verb: str = "predict") -> None:
    """Raise when a ``num_classes`` asked for differs from the count the loaded weights have.

    The facades never rebuild a head to fit a wrong count (that would predict noise); the message names
    the weights and says how to go on. ``verb`` words the count (``classify``, ``detect``, ``predict``).
    """
    if requested is not None and int(requested) != int(actual):
        raise ValueError(
            f"{source}: num_classes={requested} but the weights {verb} {actual} classes "
            f"(leave num_classes out to use them as they are)"
        )
