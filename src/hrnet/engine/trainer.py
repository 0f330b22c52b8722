"""The shared training loop: DDP, AMP, accumulation, clipping, per-iteration LR, exact resume.

Tasks supply a model, a dataset, ``loss_fn(model, batch, device) -> (loss, logs)`` and optionally
``evaluate(model, dist) -> metrics``; the :class:`Trainer` does the rest and writes into ``out_dir``:
``last.pt`` (every epoch and every ``ckpt_every_iters`` steps), ``best.pt`` + ``model_best.safetensors``
(by ``best_metric``), ``metrics.jsonl`` and ``config.yaml``.

An epoch's ``last.pt`` is written before its evaluation, so an evaluation that fails (logged, recorded in
``metrics.jsonl`` as ``type: eval_error``, training goes on unless ``train.on_eval_error=stop``) or is
killed never costs the epoch; ``--resume`` from a checkpoint taken before its evaluation evaluates first.

Iteration = optimizer step (``accum_steps`` micro-batches). A checkpoint is taken only between optimizer
steps and records the epoch, the steps already done in it, and every rank's RNG states, so
``fit(resume=...)`` replays the identical batches and random draws of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset

from hrnet.atomic import atomic_path
from hrnet.engine.checkpoint import get_rng_state, load_checkpoint, save_checkpoint, set_rng_state
from hrnet.engine.config import TrainConfig, config_to_dict, save_config
from hrnet.engine.data import SeededSamples, SkipSampler, seed_everything
from hrnet.engine.distributed import DistInfo, all_gather_object, all_reduce_, init_distributed
from hrnet.engine.logging import MetricsLogger, Progress
from hrnet.engine.optim import build_optimizer, build_scheduler
from hrnet.models.card import ModelCard
from hrnet.models.weights import save_weights

log = logging.getLogger("hrnet.engine")


class EvaluationError(ValueError):
    """Evaluation failed and ``train.on_eval_error`` is ``stop``; the epoch's checkpoint is in place."""


LossFn = Callable[[nn.Module, Any, torch.device], tuple[Tensor, dict[str, float]]]
EvalFn = Callable[[nn.Module, DistInfo], dict[str, float]]


def set_deterministic() -> None:
    """Ask torch for deterministic kernels (warn-only, so ops without one still run) and fixed cuDNN algos."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def _batch_len(batch: Any) -> int | None:
    """Number of samples in a collated batch: the leading size of its first tensor."""
    if isinstance(batch, Tensor):
        return int(batch.shape[0]) if batch.dim() > 0 else None
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, list | tuple):
        for item in batch:
            n = _batch_len(item)
            if n is not None:
                return n
    return None


def _atomic_copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


RUN_FILES = ("last.pt", "best.pt", "model_best.safetensors", "metrics.jsonl", "config.yaml")
"""What a run writes into its folder (plus ``tensorboard/`` when enabled)."""


@dataclass
class BestTracker:
    """The best evaluation so far: by ``metric`` (None: the first metric evaluated), and when it was."""

    metric: str | None = None
    higher_is_better: bool = True
    value: float | None = None
    epoch: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """What the checkpoint stores under ``best``."""
        return {"metric": self.metric, "value": self.value, "epoch": self.epoch}

    def load(self, state: dict[str, Any]) -> None:
        """Restore :meth:`as_dict` (the direction of comparison stays this run's)."""
        self.metric, self.value, self.epoch = state.get("metric"), state.get("value"), state.get("epoch")

    def update(self, metrics: dict[str, float] | None, epoch: int) -> bool:
        """True when the model of ``epoch`` becomes the best: a better score, or nothing scored yet."""
        if metrics is None:
            return self.value is None
        name = self.metric or next(iter(metrics), None)
        if name is None:
            return self.value is None
        if name not in metrics:
            raise KeyError(f"best_metric {name!r} not among the evaluation metrics {sorted(metrics)}")
        value = metrics[name]
        better = self.value is None or (value > self.value if self.higher_is_better else value < self.value)
        if better:
            self.metric, self.value, self.epoch = name, value, epoch
        return better


@dataclass
class RunOutputs:
    """The files of a run folder, written by the main rank only: ``config.yaml``, ``last.pt``, ``best.pt``
    and ``model_best.safetensors`` (weights plus the task's model card, which predict / export need)."""

    out_dir: Path
    config_dict: dict
    card: ModelCard | None = None

    @property
    def last(self) -> Path:
        return self.out_dir / "last.pt"

    def write_config(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.config_dict, self.out_dir / "config.yaml")

    def save_last(self, state: dict) -> None:
        save_checkpoint(state, self.last)

    def save_best(self, model: nn.Module, best: BestTracker, epoch: int) -> None:
        """``best.pt`` = the current ``last.pt``; ``model_best.safetensors`` = the weights, and the card with
        the epoch and score they were chosen by."""
        _atomic_copy(self.last, self.out_dir / "best.pt")
        card = self.card
        if card is not None:
            card = dataclasses.replace(card, train={"epoch": epoch, "metric": best.metric, "value": best.value})
        save_weights(model, self.out_dir / "model_best.safetensors", {"epoch": str(epoch)}, card=card)


class Trainer:
    """Runs ``cfg.epochs`` epochs of ``loss_fn`` over ``train_set``; see the module docstring.

    Extra keyword options (beyond the shared contract): ``drop_last`` drops the last incomplete batch of
    an epoch; ``seed_samples`` wraps the dataset in :class:`~hrnet.engine.data.SeededSamples` so random
    augmentation depends only on (seed, epoch, index); ``find_unused_parameters`` is passed to DDP.
    """

    def __init__(
        self,
        model: nn.Module,
        train_set: Dataset,
        cfg: TrainConfig,
        out_dir: str | Path,
        loss_fn: LossFn,
        evaluate: EvalFn | None = None,
        *,
        collate_fn: Callable[[list], Any] | None = None,
        best_metric: str | None = None,
        higher_is_better: bool = True,
        dist: DistInfo | None = None,
        config_dict: dict | None = None,
        param_groups: Iterable[Any] | None = None,
        drop_last: bool = False,
        seed_samples: bool = True,
        find_unused_parameters: bool = False,
        card: ModelCard | None = None,
    ) -> None:
        self.cfg = cfg
        self.loss_fn = loss_fn
        self.evaluate = evaluate
        self.dist = dist if dist is not None else init_distributed()
        self.device = self.dist.device
        self.outputs = RunOutputs(Path(out_dir), config_dict if config_dict is not None else config_to_dict(cfg), card)
        self._best = BestTracker(best_metric, higher_is_better)

        seed_everything(cfg.seed + self.dist.rank)
        if cfg.deterministic:
            set_deterministic()
        self._setup_amp()
        self._setup_model(model, find_unused_parameters)
        self._setup_data(train_set, collate_fn, drop_last, seed_samples)
        self._setup_optimisation(param_groups)

        self.epoch = 0  # epochs completed = index of the epoch in progress
        self.step_in_epoch = 0  # optimizer steps done inside the epoch in progress
        self.iteration = 0  # optimizer steps done in total
        self.last_metrics: dict[str, float] = {}
        self.eval_pending = False  # the last checkpoint was taken before its epoch's evaluation finished
        self._logger: MetricsLogger | None = None

    @property
    def out_dir(self) -> Path:
        """The run folder."""
        return self.outputs.out_dir

    @property
    def best(self) -> dict[str, Any]:
        """The best score so far: ``{"metric", "value", "epoch"}``."""
        return self._best.as_dict()

    def _setup_model(self, model: nn.Module, find_unused_parameters: bool) -> None:
        """The model on this rank's device (SyncBN converted when asked) and its DDP wrapper for training."""
        if self.cfg.sync_bn and self.dist.world_size > 1:
            if self.device.type != "cuda":
                raise ValueError(
                    "train.sync_bn=true needs CUDA: torch's SyncBatchNorm only runs on GPU modules; "
                    "set train.sync_bn=false for CPU (gloo) runs"
                )
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model.to(self.device)
        self.train_model: nn.Module = self.model
        if self.dist.world_size > 1:
            self.train_model = DistributedDataParallel(
                self.model,
                device_ids=[self.device] if self.device.type == "cuda" else None,
                find_unused_parameters=find_unused_parameters,
            )

    def _setup_data(
        self, train_set: Dataset, collate_fn: Callable[[list], Any] | None, drop_last: bool, seed_samples: bool
    ) -> None:
        """The sharded sampler and the epoch length (batches and optimizer steps) this rank sees."""
        cfg = self.cfg
        if isinstance(train_set, IterableDataset):
            raise TypeError(
                "Trainer needs a map-style Dataset (len + __getitem__) for sharding and exact resume; "
                f"got the IterableDataset {type(train_set).__name__}"
            )
        self.train_set = train_set
        self.collate_fn = collate_fn
        self.loader_set: Dataset = SeededSamples(train_set, cfg.seed) if seed_samples else train_set
        self.sampler = DistributedSampler(
            self.loader_set,
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
            shuffle=True,
            seed=cfg.seed,
            drop_last=False,
        )
        self.drop_last = drop_last
        per_rank = len(self.sampler)
        batches = per_rank // cfg.batch_size if drop_last else math.ceil(per_rank / cfg.batch_size)
        if batches == 0:
            raise ValueError(
                f"training set has {len(train_set)} samples ({per_rank} per process): no batch of "
                f"batch_size={cfg.batch_size} (drop_last={drop_last}); lower train.batch_size"
            )
        if cfg.max_iters_per_epoch is not None:
            batches = min(batches, cfg.max_iters_per_epoch * cfg.accum_steps)
        self.batches_per_epoch = batches
        self.iters_per_epoch = math.ceil(batches / cfg.accum_steps)

    def _setup_optimisation(self, param_groups: Iterable[Any] | None) -> None:
        """Optimizer, per-iteration LR schedule and the fp16 loss scaler (a no-op unless ``amp=fp16``)."""
        cfg = self.cfg
        self.optimizer = build_optimizer(param_groups if param_groups is not None else self.model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, self.iters_per_epoch, cfg.epochs)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.amp == "fp16")

    # ------------------------------------------------------------------------------------------------
    def _setup_amp(self) -> None:
        amp, dev = self.cfg.amp, self.device.type
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        if amp == "bf16" and dev == "cuda" and not torch.cuda.is_bf16_supported():
            raise RuntimeError(f"train.amp=bf16 but {torch.cuda.get_device_name(self.device)} has no bf16 support")
        if amp == "fp16":
            try:
                with torch.autocast(dev, dtype=torch.float16):
                    torch.ones(2, 2, device=self.device) @ torch.ones(2, 2, device=self.device)
                torch.amp.GradScaler(dev)
            except (RuntimeError, ValueError, AttributeError) as exc:
                raise RuntimeError(
                    f"train.amp=fp16 is not supported on {dev} by this torch: {exc}; use train.amp=bf16"
                ) from exc

    def _autocast(self) -> AbstractContextManager:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _make_loader(self, epoch: int, skip_batches: int) -> DataLoader:
        if isinstance(self.loader_set, SeededSamples):
            self.loader_set.epoch = epoch
        self.sampler.set_epoch(epoch)
        sampler = SkipSampler(self.sampler, skip_batches * self.cfg.batch_size)
        return DataLoader(
            self.loader_set,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            num_workers=self.cfg.workers,
            collate_fn=self.collate_fn,
            pin_memory=self.device.type == "cuda",
            drop_last=self.drop_last,
            # an own generator keeps loader creation from drawing on the global RNG (exact resume)
            generator=torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch),
        )

    # ------------------------------------------------------------------------------------------------
    def fit(self, resume: str | Path | None = None) -> dict[str, float]:
        """Train to ``cfg.epochs`` (continuing from checkpoint ``resume``); returns the last eval metrics."""
        if resume is not None:
            self._load(resume)
        if self.dist.is_main:
            self.outputs.write_config()
        self._logger = MetricsLogger(self.out_dir, enabled=self.dist.is_main, tensorboard=self.cfg.tensorboard)
        try:
            if self.eval_pending and self.evaluate is not None:  # the run stopped during this evaluation
                if self.dist.is_main:
                    log.info("evaluating epoch %d, which the resumed run had not finished evaluating", self.epoch)
                self._end_of_epoch(evaluate=True)
            while self.epoch < self.cfg.epochs:
                self._train_epoch(self.epoch)
                self.epoch += 1
                self.step_in_epoch = 0
                every = self.cfg.eval_every
                due = (
                    self.evaluate is not None
                    and every > 0
                    and (self.epoch % every == 0 or self.epoch == self.cfg.epochs)
                )
                self._end_of_epoch(evaluate=due)
        finally:
            self._logger.close()
        return dict(self.last_metrics)

    def _end_of_epoch(self, evaluate: bool) -> None:
        """Checkpoint the finished epoch, then evaluate it: a failing or killed evaluation never loses the
        epoch. ``last.pt`` is written before evaluation (flagged ``eval_pending``, so ``--resume`` evaluates it
        first) and once more after it with the metrics and the best score."""
        self.eval_pending = evaluate
        self._save_last()
        metrics = self._run_eval_guarded() if evaluate else None
        self.eval_pending = False
        improved = self._best.update(metrics, self.epoch)
        if evaluate:
            self._save_last()
        if improved and self.dist.is_main:
            self.outputs.save_best(self.model, self._best, self.epoch)

    def _run_eval_guarded(self) -> dict[str, float] | None:
        """The evaluation of this epoch, or None when it failed: the reason is logged and recorded in
        ``metrics.jsonl`` (``type: eval_error``) and training goes on, or stops with :class:`EvaluationError`
        when ``train.on_eval_error`` is ``stop`` (the epoch's checkpoint is already on disk)."""
        try:
            metrics = self._run_eval()
            name = self._best.metric
            if name is not None and name not in metrics:
                raise KeyError(f"best_metric {name!r} not among the evaluation metrics {sorted(metrics)}")
            return metrics
        except Exception as exc:  # noqa: BLE001 - any failure of user / task evaluation code is reported
            reason = f"{type(exc).__name__}: {exc}"
            last = self.outputs.last
            self._logger.log({"epoch": self.epoch, "iteration": self.iteration, "error": reason}, kind="eval_error")
            if self.dist.is_main:
                log.error(
                    "evaluation after epoch %d failed: %s (the epoch's checkpoint %s is saved)",
                    self.epoch,
                    reason,
                    last,
                )
                log.debug("evaluation traceback", exc_info=True)
            if self.cfg.on_eval_error == "stop":
                raise EvaluationError(
                    f"evaluation after epoch {self.epoch} failed: {reason}; training stopped "
                    f"(train.on_eval_error=stop) with the epoch's checkpoint in {last}; fix the "
                    f"cause and continue with --resume {last}"
                ) from exc
            return None

    def _train_epoch(self, epoch: int) -> None:
        cfg, accum = self.cfg, self.cfg.accum_steps
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        skip = self.step_in_epoch * accum
        loader = self._make_loader(epoch, skip)
        self.train_model.train()
        progress = Progress(
            self.iters_per_epoch, self.step_in_epoch, f"epoch {epoch + 1}/{cfg.epochs}", self.dist.is_main
        )
        window: dict[str, float] = defaultdict(float)
        window_steps = 0
        epoch_loss = torch.zeros(2, dtype=torch.float64, device=self.device)  # (sum, steps)
        step_loss, step_images = 0.0, 0
        step_logs: dict[str, float] = defaultdict(float)
        t_epoch = time.perf_counter()
        b = skip
        self.optimizer.zero_grad(set_to_none=True)
        try:
            for batch in loader:
                group_end = min((b // accum + 1) * accum, self.batches_per_epoch)
                group_size = group_end - (b // accum) * accum
                last_in_group = b + 1 == group_end
                sync: AbstractContextManager = nullcontext()
                if isinstance(self.train_model, DistributedDataParallel) and not last_in_group:
                    sync = self.train_model.no_sync()
                with sync:
                    with self._autocast():
                        loss, logs = self.loss_fn(self.train_model, batch, self.device)
                    loss = loss.float()
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise FloatingPointError(
                            f"non-finite training loss {value} at epoch {epoch + 1}, step {self.iteration + 1}"
                        )
                    self.scaler.scale(loss / group_size).backward()
                step_loss += value / group_size
                for k, v in logs.items():
                    step_logs[k] += float(v) / group_size
                step_images += _batch_len(batch) or cfg.batch_size
                b += 1
                if not last_in_group:
                    continue
                lr = self._optimizer_step()
                self.iteration += 1
                self.step_in_epoch += 1
                rate = progress.update(step_images * self.dist.world_size, step_loss)
                window["loss"] += step_loss
                for k, v in step_logs.items():
                    window[k] += v
                window_steps += 1
                epoch_loss += torch.tensor([step_loss, 1.0], dtype=torch.float64, device=self.device)
                if self.iteration % cfg.log_every == 0:
                    rec = {k: v / window_steps for k, v in window.items()}
                    self._logger.log(
                        {"epoch": epoch + 1, "iteration": self.iteration, "lr": lr, **rec, "images_per_s": rate}
                    )
                    window.clear()
                    window_steps = 0
                step_loss, step_images = 0.0, 0
                step_logs.clear()
                if (
                    cfg.ckpt_every_iters
                    and self.iteration % cfg.ckpt_every_iters == 0
                    and self.step_in_epoch < self.iters_per_epoch
                ):
                    self._save_last()
                if b >= self.batches_per_epoch:  # max_iters_per_epoch cap: do not fetch another batch
                    break
        finally:
            progress.close()
        all_reduce_(epoch_loss, "sum")
        mean = float(epoch_loss[0] / epoch_loss[1].clamp(min=1))
        self._logger.log(
            {
                "epoch": epoch + 1,
                "iteration": self.iteration,
                "lr": self.scheduler.get_last_lr()[0],
                "loss": mean,
                "time_s": time.perf_counter() - t_epoch,
            },
            kind="epoch",
        )
        if self.dist.is_main:
            log.info("epoch %d/%d: loss %.5g", epoch + 1, cfg.epochs, mean)

    def _optimizer_step(self) -> float:
        """Unscale, clip, step (skipped by the fp16 scaler on inf grads), advance the LR; returns the LR used."""
        lr = float(self.optimizer.param_groups[0]["lr"])
        if self.cfg.clip_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return lr

    # ------------------------------------------------------------------------------------------------
    def _run_eval(self) -> dict[str, float]:
        self.model.eval()
        try:
            with torch.no_grad():
                metrics = self.evaluate(self.model, self.dist)  # type: ignore[misc]
        finally:
            self.train_model.train()
        metrics = {k: float(v) for k, v in metrics.items()}
        self.last_metrics = metrics
        self._logger.log(
            {"epoch": self.epoch, "iteration": self.iteration, "lr": self.scheduler.get_last_lr()[0], **metrics},
            kind="eval",
        )
        if self.dist.is_main:
            log.info("eval after epoch %d: %s", self.epoch, metrics)
        return metrics

    # ------------------------------------------------------------------------------------------------
    def state_dict(self, rng: list | None = None) -> dict:
        """The checkpoint dict (see the module docstring for the keys)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "iteration": self.iteration,
            "iters_per_epoch": self.iters_per_epoch,
            "world_size": self.dist.world_size,
            "rng": rng if rng is not None else [get_rng_state()],
            "best": self._best.as_dict(),
            "metrics": dict(self.last_metrics),
            "eval_pending": bool(self.eval_pending),
            "config": self.outputs.config_dict,
        }

    def _save_last(self) -> None:
        rng = all_gather_object(get_rng_state())  # a collective: every rank takes part
        if self.dist.is_main:
            self.outputs.save_last(self.state_dict(rng))

    def _load(self, path: str | Path) -> None:
        state = load_checkpoint(path, map_location="cpu")
        required = ("model", "optimizer", "scheduler", "epoch", "iteration", "rng")
        missing = [k for k in required if k not in state]
        if missing:
            raise ValueError(f"checkpoint {path} lacks {missing}; it is not a training checkpoint")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise ValueError(f"checkpoint {path} does not fit this model: {exc}") from exc
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state.get("step_in_epoch", 0))
        self.iteration = int(state["iteration"])
        saved_ipe = int(state.get("iters_per_epoch", self.iters_per_epoch))
        if self.step_in_epoch and saved_ipe != self.iters_per_epoch:
            raise ValueError(
                f"checkpoint {path} was taken mid-epoch with {saved_ipe} steps per epoch, but this run has "
                f"{self.iters_per_epoch}; resume with the same data, batch_size, accum_steps and world size"
            )
        if state.get("best"):
            self._best.load(state["best"])
        self.last_metrics = dict(state.get("metrics") or {})
        self.eval_pending = bool(state.get("eval_pending", False))
        rng = state["rng"]
        if isinstance(rng, list) and len(rng) == self.dist.world_size:
            set_rng_state(rng[self.dist.rank])
        else:
            log.warning(
                "checkpoint %s holds RNG states for %s ranks, this run has %d: reseeding",
                path,
                len(rng) if isinstance(rng, list) else "?",
                self.dist.world_size,
            )
            seed_everything(self.cfg.seed + self.dist.rank + self.iteration)
        if self.dist.is_main:
            log.info(
                "resumed from %s at epoch %d, step %d (iteration %d)",
                path,
                self.epoch + 1,
                self.step_in_epoch,
                self.iteration,
            )
