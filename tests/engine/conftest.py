"""Engine tests: one CPU thread, and torch's global determinism switch restored after each test."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _engine_test_globals():
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(det, warn_only=det_warn)
