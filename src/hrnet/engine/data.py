"""Data-side helpers for exact, resumable training: sample-seeded datasets and a skipping sampler.

A training run is reproducible (and resumable mid-epoch) when the data a step sees depends only on
``(seed, epoch, sample index)``: not on the worker that loaded it, nor on how many batches came before.
:class:`SeededSamples` runs every ``__getitem__`` under generators seeded from that triple and restores
the caller's generators afterwards; :class:`SkipSampler` drops the already-consumed indices of an epoch.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy and torch (CPU and all CUDA devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 32-bit seed for one sample of one epoch (numpy SeedSequence of the triple)."""
    return int(np.random.SeedSequence([seed % 2**32, epoch, index]).generate_state(1)[0])


@contextmanager
def forked_rng(seed: int) -> Iterator[None]:
    """Seed torch (CPU), numpy and ``random`` with ``seed`` inside the block; restore their states after."""
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()
    py_state = random.getstate()
    torch.random.default_generator.manual_seed(seed)  # CPU only: never touch the CUDA generators here
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        np.random.set_state(np_state)
        random.setstate(py_state)


class SeededSamples(Dataset):
    """Wraps a dataset so sample ``i`` of epoch ``e`` is drawn with RNGs seeded by ``(seed, e, i)``.

    Random augmentations that use the global torch / numpy / ``random`` generators then give the same
    result with 0 or N workers, in DDP or not, and after a mid-epoch resume. Set :attr:`epoch` before each
    epoch's DataLoader is created (workers copy the wrapper when they start).
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        with forked_rng(sample_seed(self.seed, self.epoch, int(index))):
            return self.dataset[index]


class SkipSampler(Sampler[int]):
    """Yields the indices of ``sampler`` after dropping the first ``skip`` ones (resume inside an epoch)."""

    def __init__(self, sampler: Sampler[int], skip: int) -> None:
        self.sampler = sampler
        self.skip = max(int(skip), 0)

    def __iter__(self) -> Iterator[int]:
        for i, index in enumerate(self.sampler):
            if i >= self.skip:
                yield index

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)  # type: ignore[arg-type]
