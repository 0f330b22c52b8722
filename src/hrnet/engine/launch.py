"""The training preamble every task runs, written once: :func:`run_training`.

In order: join the process group (``torchrun``) or pick the device; take the run's own copy of the
config (the caller's object is never changed); claim and lock the run folder (rank 0 decides, every
rank is told: :mod:`hrnet.engine.rundir`); run the task's quick data check on rank 0 and log its
summary; seed Python ``random``, NumPy and torch with ``train.seed`` (the initial weights depend on the
seed only, not on what ran before); let the task build its model, datasets, loss and evaluation
(:class:`TrainSetup`); train them with the :class:`~hrnet.engine.trainer.Trainer`.
"""

from __future__ import annotations

import copy
import logging
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from torch import nn
from torch.utils.data import Dataset

from hrnet.engine.config import TrainConfig, config_to_dict
from hrnet.engine.data import seed_everything
from hrnet.engine.distributed import DistInfo, broadcast_object, init_distributed
from hrnet.engine.rundir import RunClaim, claim_train_dir
from hrnet.engine.trainer import RUN_FILES, EvalFn, LossFn, Trainer
from hrnet.models.card import ModelCard

log = logging.getLogger("hrnet.engine")


class DataCheckReport(Protocol):
    """What a task's data check returns (:class:`hrnet.datacheck.DataReport`)."""

    def log_summary(self, logger: logging.Logger, command: str = ...) -> None: ...


@dataclass(frozen=True)
class RunContext:
    """What a task's ``build`` step gets: the run's own config copy, the process group and the run folder
    (where task files such as ``classes.txt`` go, written by ``dist.is_main`` only)."""

    cfg: Any
    dist: DistInfo
    run_dir: Path


@dataclass
class TrainSetup:
    """What a task hands the engine to train. ``train_cfg`` replaces ``cfg.train`` when the task adjusts it
    (a scaled learning rate, one ready batch per loader item); the rest are the Trainer's arguments."""

    model: nn.Module
    train_set: Dataset
    loss_fn: LossFn
    evaluate: EvalFn | None = None
    best_metric: str | None = None
    higher_is_better: bool = True
    card: ModelCard | None = None
    collate_fn: Callable[[list], Any] | None = None
    param_groups: Iterable[Any] | None = None
    train_cfg: TrainConfig | None = None


@contextmanager
def claimed_run_dir(
    out: str | Path | None, *, resume: str | Path | None, exist_ok: bool, dist: DistInfo
) -> Iterator[Path]:
    """The run folder of :func:`~hrnet.engine.rundir.claim_train_dir`, held for the block.

    Only rank 0 looks at the disk, creates the folder and holds the lock; it broadcasts the path (or its
    error, raised on every rank, so none waits forever) and prints where the run writes. With
    ``exist_ok`` it removes the training files of the run that was there, so nothing of it mixes in.
    """
    claim: RunClaim | None = None
    error: Exception | None = None
    if dist.is_main:
        try:
            claim = claim_train_dir(out, resume=resume, exist_ok=exist_ok)
        except Exception as err:  # noqa: BLE001 - re-raised below on every rank, so none waits forever
            error = err
    path, error = broadcast_object((None if claim is None else str(claim.path), error))
    if error is not None:
        raise error
    try:
        if claim is not None:
            if exist_ok and resume is None:
                _remove_run_files(claim.path)
            print(f"training run: {claim.note}", file=sys.stderr, flush=True)
        yield Path(path)
    finally:
        if claim is not None:
            claim.release()


def _remove_run_files(run_dir: Path) -> None:
    """The files an earlier training left in ``run_dir`` (``--exist-ok`` replaces that run)."""
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)


def run_training(
    cfg: Any,
    out: str | Path | None,
    build: Callable[[RunContext], TrainSetup],
    *,
    task: str,
    check: Callable[[Any], DataCheckReport] | None = None,
    logger: logging.Logger | None = None,
    resume: str | Path | None = None,
    exist_ok: bool = False,
    device: str | None = None,
    dist: DistInfo | None = None,
) -> dict[str, float]:
    """Train a task's experiment ``cfg`` (a dataclass with a ``train`` section) into a run folder; returns
    the last evaluation metrics. See the module docstring for the steps.

    ``build(ctx)`` makes the model, datasets, loss and evaluation; ``check(cfg)`` is the task's quick data
    check, its summary logged to ``logger`` with a pointer to ``hrnet <task> check-data``. ``out``,
    ``resume`` and ``exist_ok`` choose the folder (:mod:`hrnet.engine.rundir`).
    """
    dist = dist or init_distributed(device)
    cfg = copy.deepcopy(cfg)
    with claimed_run_dir(out, resume=resume, exist_ok=exist_ok, dist=dist) as run_dir:
        if check is not None and dist.is_main:  # every data problem reported now, not when met mid-epoch
            check(cfg).log_summary(logger or log, f"hrnet {task} check-data")
        seed_everything(cfg.train.seed)
        setup = build(RunContext(cfg, dist, run_dir))
        trainer = Trainer(
            setup.model,
            setup.train_set,
            setup.train_cfg or cfg.train,
            run_dir,
            setup.loss_fn,
            setup.evaluate,
            collate_fn=setup.collate_fn,
            best_metric=setup.best_metric,
            higher_is_better=setup.higher_is_better,
            dist=dist,
            config_dict=config_to_dict(cfg),
            param_groups=setup.param_groups,
            card=setup.card,
        )
        return trainer.fit(resume=resume)
