"""Shared training engine: typed configs, DDP helpers, crash-safe checkpoints, logging and the Trainer.

Task packages build on it; it never imports them (from ``hrnet.models`` only the generic
``save_weights``), so it can be used on any ``nn.Module`` and ``Dataset``.
"""

from hrnet.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from hrnet.engine.config import (
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
    config_to_dict,
    load_config,
    save_config,
)
from hrnet.engine.data import SeededSamples, seed_everything
from hrnet.engine.distributed import (
    DistInfo,
    all_gather_object,
    all_reduce_,
    barrier,
    broadcast_object,
    cleanup,
    init_distributed,
    print_main,
)
from hrnet.engine.launch import RunContext, TrainSetup, run_training
from hrnet.engine.optim import build_optimizer, build_scheduler
from hrnet.engine.rundir import RunLockedError, claim_train_dir, make_run_dir
from hrnet.engine.trainer import Trainer

__all__ = [
    "CheckpointError",
    "DistInfo",
    "RunContext",
    "RunLockedError",
    "OptimConfig",
    "ScheduleConfig",
    "SeededSamples",
    "TrainConfig",
    "TrainSetup",
    "Trainer",
    "all_gather_object",
    "all_reduce_",
    "barrier",
    "broadcast_object",
    "build_optimizer",
    "build_scheduler",
    "claim_train_dir",
    "cleanup",
    "config_to_dict",
    "init_distributed",
    "load_checkpoint",
    "load_config",
    "make_run_dir",
    "print_main",
    "run_training",
    "save_checkpoint",
    "save_config",
    "seed_everything",
]
