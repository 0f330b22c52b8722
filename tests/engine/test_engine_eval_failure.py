"""An evaluation that fails or is killed never costs the epoch it evaluates.

The epoch's ``last.pt`` is on disk before evaluation starts; a failure is logged, recorded in
``metrics.jsonl`` and training goes on (or stops cleanly on request); a run killed inside evaluation
resumes by evaluating that epoch first. Truth: the files on disk and a real SIGKILL of a child process.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from hrnet.engine import TrainConfig, Trainer
from hrnet.engine.checkpoint import load_checkpoint
from hrnet.engine.trainer import EvaluationError
from tests.engine.engine_toys import ToyRegression, make_evaluate, make_mlp, mse_loss

REPO = Path(__file__).resolve().parents[2]


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 3, "batch_size": 8, "workers": 0, "log_every": 100, **kw})


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _failing_second_eval():
    good = make_evaluate()
    calls = {"n": 0}

    def evaluate(model, dist):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyError("area")  # what pycocotools raised on a file without 'area'
        return good(model, dist)

    return evaluate


def test_failed_evaluation_is_recorded_and_training_goes_on(tmp_path, caplog):
    trainer = Trainer(
        make_mlp(), ToyRegression(24), _cfg(), tmp_path, mse_loss, _failing_second_eval(), best_metric="neg_mse"
    )
    with caplog.at_level(logging.ERROR, logger="hrnet.engine"):
        metrics = trainer.fit()
    assert "neg_mse" in metrics
    assert "evaluation after epoch 2 failed: KeyError: 'area'" in caplog.text
    rows = _rows(tmp_path)
    assert [(r["type"], r["epoch"]) for r in rows if r["type"].startswith("eval")] == [
        ("eval", 1),
        ("eval_error", 2),
        ("eval", 3),
    ]
    assert next(r for r in rows if r["type"] == "eval_error")["error"] == "KeyError: 'area'"
    state = load_checkpoint(tmp_path / "last.pt", map_location="cpu")
    assert state["epoch"] == 3 and state["eval_pending"] is False


def test_stop_on_evaluation_error_keeps_the_epoch(tmp_path):
    trainer = Trainer(
        make_mlp(),
        ToyRegression(24),
        _cfg(on_eval_error="stop"),
        tmp_path,
        mse_loss,
        _failing_second_eval(),
        best_metric="neg_mse",
    )
    with pytest.raises(EvaluationError, match=r"after epoch 2 failed: KeyError: 'area'.*--resume .*last.pt"):
        trainer.fit()
    state = load_checkpoint(tmp_path / "last.pt", map_location="cpu")
    assert state["epoch"] == 2  # the evaluated epoch's training is on disk
    with pytest.raises(ValueError, match="on_eval_error"):
        _cfg(on_eval_error="ignore")


def test_killed_evaluation_leaves_the_checkpoint_and_resume_evaluates_it(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal
        import torch
        torch.set_num_threads(1)
        from hrnet.engine import TrainConfig, Trainer
        from tests.engine.engine_toys import ToyRegression, make_mlp, mse_loss

        def evaluate(model, dist):
            os.kill(os.getpid(), signal.SIGKILL)  # the machine dies inside the first evaluation

        cfg = TrainConfig(epochs=2, batch_size=8, workers=0, log_every=100)
        Trainer(make_mlp(), ToyRegression(24), cfg, {str(tmp_path)!r}, mse_loss, evaluate,
                best_metric="neg_mse").fit()
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    state = load_checkpoint(tmp_path / "last.pt", map_location="cpu")
    assert state["epoch"] == 1 and state["eval_pending"] is True

    trainer = Trainer(
        make_mlp(), ToyRegression(24), _cfg(epochs=2), tmp_path, mse_loss, make_evaluate(), best_metric="neg_mse"
    )
    torch.testing.assert_close(state["model"]["0.weight"], load_checkpoint(tmp_path / "last.pt")["model"]["0.weight"])
    trainer.fit(resume=tmp_path / "last.pt")
    evals = [(r["type"], r["epoch"]) for r in _rows(tmp_path) if r["type"].startswith("eval")]
    assert evals == [("eval", 1), ("eval", 2)]  # epoch 1 evaluated on resume, then epoch 2 trained
    final = load_checkpoint(tmp_path / "last.pt", map_location="cpu")
    assert final["epoch"] == 2 and final["eval_pending"] is False and (tmp_path / "best.pt").is_file()
