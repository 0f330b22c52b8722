"""Shared test fixtures: where the real data samples live, and a quiet, bounded torch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the checkout (CI provides it); skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data samples not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def offline_zoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Pretrained weights never come from the network nor from the user's cache in tests: ``$HRNET_HOME`` is
    an empty folder of this session and ``HRNET_OFFLINE=1`` (subprocesses inherit both). A test that needs
    zoo weights puts them where the cache expects them, or serves them from a loopback mirror."""
    patch = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("hrnet-home")
    patch.setenv("HRNET_HOME", str(path))
    patch.setenv("HRNET_OFFLINE", "1")
    yield path
    patch.undo()


@pytest.fixture(autouse=True, scope="session")
def runtime_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The runtimes keep ONNX exports under ``$HRNET_CACHE``: a folder of this test session, never the
    user's cache (subprocesses inherit it)."""
    patch = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("hrnet-cache")
    patch.setenv("HRNET_CACHE", str(path))
    yield path
    patch.undo()
