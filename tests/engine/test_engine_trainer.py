"""Trainer: exact resume, accumulation, AMP on CPU, outputs on disk, best-model selection, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import hrnet
from hrnet.engine import (
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
    Trainer,
    load_checkpoint,
)
from hrnet.engine.distributed import DistInfo
from tests.engine.engine_toys import CrashAt, ToyRegression, make_evaluate, make_mlp, mse_loss

CPU = DistInfo(0, 1, 0, torch.device("cpu"))


def _cfg(**kw) -> TrainConfig:
    base = dict(
        epochs=3,
        batch_size=4,
        workers=0,
        seed=5,
        deterministic=True,
        log_every=2,
        optim=OptimConfig(name="sgd", lr=0.01, momentum=0.9, weight_decay=1e-4),
        schedule=ScheduleConfig(name="multistep", milestones=[2], gamma=0.1, warmup_iters=3),
    )
    base.update(kw)
    return TrainConfig(**base)


def _train(out: Path, cfg: TrainConfig, loss_fn=mse_loss, resume=None, dropout=0.2, **kw):
    trainer = Trainer(
        make_mlp(dropout=dropout),
        ToyRegression(24),
        cfg,
        out,
        loss_fn,
        make_evaluate(),
        best_metric="neg_mse",
        dist=CPU,
        **kw,
    )
    return trainer, trainer.fit(resume=resume)


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        assert torch.equal(va, vb), f"{ka} differs"


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_after_epoch_and_mid_epoch_is_bit_identical(tmp_path, workers):
    cfg = _cfg(workers=workers, ckpt_every_iters=4)  # 6 steps / epoch: checkpoints at 4, 6, 8, 12, 16, 18
    ref, ref_metrics = _train(tmp_path / "ref", cfg)
    assert ref.iteration == 18

    # crash in epoch 2 before the mid-epoch checkpoint at step 8: last.pt is the end of epoch 1
    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(tmp_path / "a", cfg, loss_fn=CrashAt(mse_loss, 7))
    ck = load_checkpoint(tmp_path / "a" / "last.pt")
    assert (ck["epoch"], ck["step_in_epoch"], ck["iteration"]) == (1, 0, 6)
    resumed, metrics = _train(tmp_path / "a", cfg, resume=tmp_path / "a" / "last.pt")
    _assert_same_weights(ref.model, resumed.model)
    assert metrics == ref_metrics

    # crash in epoch 2 after the mid-epoch checkpoint at step 8 (2 of 6 steps into epoch 2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(tmp_path / "b", cfg, loss_fn=CrashAt(mse_loss, 10))
    ck = load_checkpoint(tmp_path / "b" / "last.pt")
    assert (ck["epoch"], ck["step_in_epoch"], ck["iteration"]) == (1, 2, 8)
    resumed, metrics = _train(tmp_path / "b", cfg, resume=tmp_path / "b" / "last.pt")
    _assert_same_weights(ref.model, resumed.model)
    assert metrics == ref_metrics
    assert resumed.scheduler.get_last_lr() == ref.scheduler.get_last_lr()


def test_sample_seeding_makes_workers_irrelevant(tmp_path):
    a, _ = _train(tmp_path / "w0", _cfg(epochs=1, workers=0), dropout=0.0)
    b, _ = _train(tmp_path / "w2", _cfg(epochs=1, workers=2), dropout=0.0)
    _assert_same_weights(a.model, b.model)


def test_gradient_accumulation_matches_big_batch(tmp_path):
    kw = dict(epochs=2, deterministic=False, schedule=ScheduleConfig(name="poly", power=0.9))
    big, _ = _train(tmp_path / "big", _cfg(batch_size=8, **kw), dropout=0.0)
    acc, _ = _train(tmp_path / "acc", _cfg(batch_size=4, accum_steps=2, **kw), dropout=0.0)
    assert big.iteration == acc.iteration == 6
    for (k, va), vb in zip(big.model.state_dict().items(), acc.model.state_dict().values()):
        torch.testing.assert_close(va, vb, rtol=1e-5, atol=1e-6, msg=k)
    # and it really differs from plain batch 4 (the test could otherwise pass trivially)
    small, _ = _train(tmp_path / "small", _cfg(batch_size=4, **kw), dropout=0.0)
    assert not torch.allclose(small.model[0].weight, big.model[0].weight, atol=1e-4)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_on_cpu_trains(tmp_path, amp):
    cfg = _cfg(
        epochs=6,
        amp=amp,
        deterministic=False,
        log_every=1,
        schedule=ScheduleConfig(name="constant"),
        optim=OptimConfig(name="adam", lr=0.05),
    )
    trainer, metrics = _train(tmp_path, cfg, dropout=0.0)
    recs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in recs if r["type"] == "train")
    epoch_losses = [r["loss"] for r in recs if r["type"] == "epoch"]
    assert epoch_losses[-1] < 0.3 * epoch_losses[0], epoch_losses
    with torch.autocast("cpu", dtype=trainer.amp_dtype):
        assert trainer.model(torch.zeros(2, 4)).dtype == trainer.amp_dtype  # autocast was really in use
    ck = load_checkpoint(tmp_path / "last.pt")
    if amp == "fp16":
        assert ck["scaler"]["scale"] > 0
    else:
        assert ck["scaler"] == {}


def test_outputs_on_disk_and_best_selection(tmp_path):
    scripted = iter([0.5, 0.9, 0.7])
    snapshots = []

    def evaluate(model, dist):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        assert not model.training
        return {"acc": next(scripted)}

    cfg = _cfg(deterministic=False)
    config_dict = {"task": "toy", "train": {"epochs": 3}}
    trainer = Trainer(
        make_mlp(),
        ToyRegression(24),
        cfg,
        tmp_path,
        mse_loss,
        evaluate,
        best_metric="acc",
        dist=CPU,
        config_dict=config_dict,
    )
    metrics = trainer.fit()
    assert metrics == {"acc": 0.7}
    assert trainer.model.training

    last, best = load_checkpoint(tmp_path / "last.pt"), load_checkpoint(tmp_path / "best.pt")
    for key in ("model", "optimizer", "scheduler", "scaler", "epoch", "iteration", "rng", "best", "config"):
        assert key in last
    assert last["epoch"] == 3 and best["epoch"] == 2
    assert best["best"] == {"metric": "acc", "value": 0.9, "epoch": 2}
    assert last["config"] == config_dict
    weights = load_file(tmp_path / "model_best.safetensors")
    for k, v in snapshots[1].items():
        assert torch.equal(weights[k], v)
        assert torch.equal(best["model"][k], v)
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == config_dict

    recs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["type"] for r in recs].count("eval") == 3
    assert [r["type"] for r in recs].count("epoch") == 3
    train = [r for r in recs if r["type"] == "train"]
    assert [r["iteration"] for r in train] == list(range(2, 19, 2))  # log_every=2, 18 steps
    for r in recs:
        assert {"epoch", "iteration", "lr"} <= set(r)
    # LR logged = the LR used by that step: warmup 3 steps, x0.1 from epoch 3 (milestone 2, 6 steps/epoch)
    assert train[0]["lr"] == pytest.approx(0.01 * 2 / 3)
    assert train[2]["lr"] == pytest.approx(0.01)
    assert train[-1]["lr"] == pytest.approx(0.001)
    assert trainer.train_set.epochs_seen == [0, 1, 2]


def test_eval_every_and_lower_is_better(tmp_path):
    cfg = _cfg(epochs=3, eval_every=2, deterministic=False)
    _train(tmp_path, cfg)
    recs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs if r["type"] == "eval"] == [2, 3]  # every 2 epochs and at the end

    scripted = iter([3.0, 1.0, 2.0])
    trainer = Trainer(
        make_mlp(),
        ToyRegression(24),
        _cfg(deterministic=False),
        tmp_path / "low",
        mse_loss,
        lambda model, dist: {"top1": 0.0, "err": next(scripted)},
        best_metric="err",
        higher_is_better=False,
        dist=CPU,
    )
    trainer.fit()
    assert trainer.best == {"metric": "err", "value": 1.0, "epoch": 2}
    assert load_checkpoint(tmp_path / "low" / "best.pt")["epoch"] == 2


def test_max_iters_and_clipping(tmp_path):
    cfg = _cfg(
        epochs=2,
        max_iters_per_epoch=2,
        clip_grad_norm=1e-3,
        deterministic=False,
        schedule=ScheduleConfig(name="constant"),
        optim=OptimConfig(name="sgd", lr=1.0, momentum=0.0),
    )
    model = make_mlp()
    before = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(model, ToyRegression(24), cfg, tmp_path, mse_loss, dist=CPU)
    trainer.fit()
    assert trainer.iteration == 4
    step = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    assert step <= 4 * 1e-3 + 1e-6  # 4 SGD steps of lr 1 with gradient norm clipped to 1e-3
    assert (tmp_path / "model_best.safetensors").is_file()  # no evaluator: best = latest


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="no batch"):
        Trainer(make_mlp(), ToyRegression(3), _cfg(batch_size=4), tmp_path, mse_loss, dist=CPU, drop_last=True)

    def nan_loss(model, batch, device):
        return torch.tensor(float("nan")), {}

    t = Trainer(make_mlp(), ToyRegression(8), _cfg(), tmp_path / "nan", nan_loss, dist=CPU)
    with pytest.raises(FloatingPointError, match="non-finite"):
        t.fit()

    other = torch.nn.Linear(4, 1)
    _train(tmp_path / "ok", _cfg(epochs=1, deterministic=False))
    t = Trainer(other, ToyRegression(8), _cfg(), tmp_path / "x", mse_loss, dist=CPU)
    with pytest.raises(ValueError, match="does not fit this model"):
        t.fit(resume=tmp_path / "ok" / "last.pt")


def test_tensorboard_missing_is_a_clear_error(tmp_path):
    try:
        import tensorboard  # noqa: F401

        pytest.skip("tensorboard is installed here")
    except ImportError:
        pass
    t = Trainer(make_mlp(), ToyRegression(8), _cfg(tensorboard=True), tmp_path, mse_loss, dist=CPU)
    with pytest.raises(ImportError, match=r"hrnet\[tensorboard\]"):
        t.fit()


def test_real_hrnet_model_trains_and_its_best_weights_load_back(tmp_path):
    """The engine on the library's smallest pose model (BatchNorm, many buffers) and ``hrnet.load_weights``."""
    torch.manual_seed(0)
    model = hrnet.create_model("pose_hrnet_w18_small_v1", num_joints=2)
    data = [(torch.randn(3, 32, 32), torch.rand(2, 8, 8)) for _ in range(4)]

    def heatmap_loss(model, batch, device):
        x, y = (t.to(device) for t in batch)
        loss = torch.nn.functional.mse_loss(model(x).float(), y)
        return loss, {}

    cfg = _cfg(epochs=1, batch_size=2, deterministic=False, optim=OptimConfig(name="adam", lr=1e-3))
    trainer = Trainer(model, data, cfg, tmp_path, heatmap_loss, dist=CPU)
    trainer.fit()
    assert trainer.iteration == 2
    fresh = hrnet.create_model("pose_hrnet_w18_small_v1", num_joints=2)
    result = hrnet.load_weights(fresh, tmp_path / "model_best.safetensors")
    assert not result.missing and not result.unexpected
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(data)

    with pytest.raises(TypeError, match="map-style"):
        Trainer(model, Stream(), cfg, tmp_path, heatmap_loss, dist=CPU)
