"""Process-group helpers: one code path for ``torchrun`` (DDP) and a plain single process.

Under ``torchrun`` the environment holds RANK / WORLD_SIZE / LOCAL_RANK; we then join a process group
(NCCL on CUDA, Gloo on CPU). Without it every helper degrades to the single-process no-op, so tasks
call ``all_gather_object`` etc. unconditionally.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist


@dataclass
class DistInfo:
    """Where this process sits in the job and which device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and logs (rank 0)."""
        return self.rank == 0


def is_initialized() -> bool:
    """True when a torch.distributed process group is active."""
    return tdist.is_available() and tdist.is_initialized()


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> CUDA when present, else CPU; a CUDA device that is not there is a clear ValueError.

    Every facade and command picks its device here, so ``--device cuda`` on a machine without a GPU
    says so in one line instead of failing deep inside torch.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"--device {device}: not a device name (cpu, cuda, cuda:1, mps)") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: no CUDA GPU is available here (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"--device {device}: MPS is not available here (use --device cpu)")
    return dev


def _resolve_device(device: str | None, local_rank: int) -> torch.device:
    dev = resolve_device(device)
    if dev.type == "cuda":
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    return dev


def init_distributed(device: str | None = None, timeout_s: float = 1800.0) -> DistInfo:
    """Join the ``torchrun`` process group if the environment asks for one; otherwise world size 1.

    ``device`` None picks CUDA (``cuda:LOCAL_RANK``) when available, else CPU. The backend follows the
    device: NCCL for CUDA, Gloo for CPU. Calling it twice returns the existing group's info.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if is_initialized():
        rank, world_size = tdist.get_rank(), tdist.get_world_size()
        return DistInfo(rank, world_size, local_rank, _resolve_device(device, local_rank))
    dev = _resolve_device(device, local_rank)
    if world_size > 1:
        if not tdist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {}
        if dev.type == "cuda":
            kwargs["device_id"] = dev
        tdist.init_process_group(
            backend=backend,
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
            **kwargs,
        )
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def get_world_size() -> int:
    """World size of the active group (1 without one)."""
    return tdist.get_world_size() if is_initialized() else 1


def get_rank() -> int:
    """Rank of this process in the active group (0 without one)."""
    return tdist.get_rank() if is_initialized() else 0


def all_gather_object(obj: Any) -> list:
    """Gather a picklable object from every rank; returns the list ordered by rank (``[obj]`` alone)."""
    if not is_initialized() or tdist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * tdist.get_world_size()
    tdist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s picklable ``obj`` on every rank (``obj`` itself without a group); what the other
    ranks pass is ignored. How every rank learns a decision only rank 0 can take (the run folder)."""
    if not is_initialized() or tdist.get_world_size() == 1:
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=src)
    return box[0]


def is_main_process() -> bool:
    """Rank 0 of the active group, or of the ``torchrun`` environment (``RANK``) before a group exists."""
    return get_rank() == 0 if is_initialized() else int(os.environ.get("RANK", "0")) == 0


def print_main(*values: Any, **kwargs: Any) -> None:
    """``print`` on the main process only, so a command run under ``torchrun`` prints its result once."""
    if is_main_process():
        print(*values, **kwargs)


_OPS = {"sum": "SUM", "max": "MAX", "min": "MIN", "mean": "SUM", "avg": "SUM"}


def all_reduce_(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Reduce ``tensor`` in place over all ranks (``op``: sum, mean, max, min) and return it.

    Under NCCL the tensor must live on this rank's CUDA device; Gloo takes CPU tensors.
    """
    if op not in _OPS:
        raise ValueError(f"all_reduce_ op must be one of {sorted(_OPS)}, got {op!r}")
    if not is_initialized() or tdist.get_world_size() == 1:
        return tensor
    tdist.all_reduce(tensor, op=getattr(tdist.ReduceOp, _OPS[op]))
    if op in ("mean", "avg"):
        tensor.div_(tdist.get_world_size())
    return tensor


def barrier() -> None:
    """Wait for every rank (no-op without a group)."""
    if is_initialized() and tdist.get_world_size() > 1:
        tdist.barrier()


def cleanup() -> None:
    """Leave the process group if one is active."""
    if is_initialized():
        tdist.destroy_process_group()
