"""Two-process gloo DDP (CPU) agrees with one process at the same global batch.

The toy model has no BatchNorm: torch's SyncBatchNorm runs only on GPU modules, so on CPU a BN model
could not match a single process (per-rank batch statistics).
"""

from __future__ import annotations

import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

from hrnet.engine import Trainer
from hrnet.engine.distributed import DistInfo
from tests.engine.engine_toys import ToyRegression, ddp_cfg, ddp_worker, make_mlp, mse_loss, run_toy_training

SINGLE = DistInfo(0, 1, 0, torch.device("cpu"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_two_process_gloo_matches_single_process(tmp_path):
    t0 = time.perf_counter()
    mp.spawn(ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    spawn_s = time.perf_counter() - t0
    r0, r1 = (torch.load(tmp_path / "ddp" / f"rank{r}.pt", weights_only=True) for r in range(2))
    ref_state, ref_metrics = run_toy_training(str(tmp_path / "single"), SINGLE, 8, bn=False)
    assert r0["metrics"] == r1["metrics"]  # every rank returns the same, gathered metrics
    for k, v in ref_state.items():
        assert torch.equal(r0["state"][k], r1["state"][k]), f"ranks disagree on {k}"
        torch.testing.assert_close(r0["state"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    assert r0["metrics"]["mse"] == pytest.approx(ref_metrics["mse"], rel=1e-5)
    ck = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert len(ck["rng"]) == 2 and ck["world_size"] == 2  # each rank's RNG state, for exact resume
    assert not torch.equal(ck["rng"][0]["torch"], ck["rng"][1]["torch"])  # ranks are seeded seed + rank
    assert spawn_s < 60


def test_sync_bn_on_cpu_ddp_is_a_clear_error(tmp_path):
    fake_rank0_of_2 = DistInfo(0, 2, 0, torch.device("cpu"))
    cfg = ddp_cfg(4, bn=True)
    with pytest.raises(ValueError, match="sync_bn.*CUDA"):
        Trainer(make_mlp(bn=True), ToyRegression(32), cfg, tmp_path, mse_loss, dist=fake_rank0_of_2)
