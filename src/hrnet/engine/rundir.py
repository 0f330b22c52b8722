"""Run folders: where a training or a predict run writes, chosen so that no run overwrites another.

Predict (:func:`make_run_dir`): every run gets a fresh ``OUT/run-NNN`` (``exist_ok``: ``OUT`` itself).

Training (:func:`claim_train_dir`), one rule:

* ``--resume CKPT`` continues in the checkpoint's own folder;
* ``--exist-ok`` writes into ``OUT``, replacing the training files of an earlier run there;
* otherwise ``OUT`` itself when it does not exist or is empty, else a fresh ``OUT/run-NNN`` (``run-002``
  for the second run, the first one being ``OUT`` itself), so an earlier run's files stay as they were.

A training run holds ``RUN/train.lock`` (created with ``O_CREAT | O_EXCL``, holding ``pid host``) while it
writes, so two processes never write into one folder: the second gets :class:`RunLockedError` naming the
folder. A lock left by a process that no longer runs (same host, dead pid) is taken over with a warning.
Creating the lock is the first write into a folder, so a run that finds ``OUT`` empty and wins the lock
owns it; one that loses the race moves on to a fresh ``OUT/run-NNN``.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("hrnet.engine")

LOCK_NAME = "train.lock"
RUN_PREFIX = "run-"


class RunLockedError(OSError):
    """Another live process holds the run folder's lock (a CLI error: one line, exit status 2)."""


def _check_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: --out exists and is not a folder")


def next_run_dir(parent: str | Path, start: int = 1) -> Path:
    """Create ``parent/run-NNN`` numbered above every existing ``run-NNN`` (and at least ``start``).

    ``mkdir`` without ``exist_ok`` is the atomic claim: two processes never get the same folder.
    """
    parent = Path(parent)
    numbers = (p.name[len(RUN_PREFIX) :] for p in parent.glob(f"{RUN_PREFIX}*"))
    taken = [int(n) for n in numbers if n.isdigit()]
    n = max([start - 1, *taken]) + 1
    while True:
        run = parent / f"{RUN_PREFIX}{n:03d}"
        try:
            run.mkdir(parents=True)
            return run
        except FileExistsError:
            n += 1


def make_run_dir(out: str | Path, exist_ok: bool = False) -> Path:
    """Predict's rule: a fresh ``out/run-NNN`` folder, or ``out`` itself with ``exist_ok``. A path that
    exists and is not a folder is an error naming it."""
    out = Path(out)
    _check_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    return out if exist_ok else next_run_dir(out)


# ----------------------------------------------------------------------------------------------------
# the lock


def _host() -> str:
    return socket.gethostname() or "?"


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a process of another user counts as running)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would signal the process there: never judge a lock stale
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it runs, under another user
        return True
    return True


def _read_holder(path: Path) -> tuple[int, str] | None:
    """(pid, host) written in a lock file; None when it is gone, empty or not ours to parse."""
    try:
        words = path.read_text(encoding="utf-8").split()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    if not words or not words[0].isdigit():
        return None
    return int(words[0]), words[1] if len(words) > 1 else _host()


@dataclass
class RunLock:
    """The lock file of a run folder, held by this process until :meth:`release`."""

    path: Path
    holder: tuple[int, str] = field(default_factory=lambda: (os.getpid(), _host()))

    def release(self) -> None:
        """Remove the lock file if it is still this process's (never one a later run took over)."""
        if _read_holder(self.path) == self.holder:
            self.path.unlink(missing_ok=True)


def try_lock(folder: str | Path) -> RunLock | None:
    """Create ``folder/train.lock`` (``O_CREAT | O_EXCL``, holding ``pid host``); None when it exists."""
    lock = RunLock(Path(folder) / LOCK_NAME)
    try:
        fd = os.open(lock.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        return None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"{lock.holder[0]} {lock.holder[1]}\n")
    return lock


def _take_over(path: Path, stale: tuple[int, str]) -> None:
    """Move a dead process's lock aside (rename is atomic: one taker wins), putting back a lock that a live
    process created in between."""
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    if _read_holder(aside) != stale:
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)


def acquire_lock(folder: str | Path, *, wait_s: float = 2.0) -> RunLock:
    """Hold ``folder/train.lock``: created, or taken over from a process that no longer runs.

    Raises :class:`RunLockedError` naming the folder and the holder when a live process holds it. A lock
    file still empty after ``wait_s`` (its creator died before writing its pid) counts as stale.
    """
    folder = Path(folder)
    path = folder / LOCK_NAME
    waited = 0.0
    while True:
        lock = try_lock(folder)
        if lock is not None:
            return lock
        holder = _read_holder(path)
        if holder is None and path.exists() and waited < wait_s:  # created, pid not written yet
            waited += 0.05
            time.sleep(0.05)
            continue
        if holder is not None and (holder[1] != _host() or _pid_alive(holder[0])):
            where = f"pid {holder[0]}" + (f" on {holder[1]}" if holder[1] != _host() else "")
            raise RunLockedError(
                f"{folder}: another training ({where}) is writing into this run folder (lock {path}); "
                "wait for it to finish or choose another --out"
            )
        if path.exists():
            who = f"pid {holder[0]}, no longer running" if holder else "no pid in it"
            log.warning("%s: taking over the stale lock %s (%s)", folder, path, who)
            if holder is None:
                path.unlink(missing_ok=True)
            else:
                _take_over(path, holder)
        waited = 0.0


# ----------------------------------------------------------------------------------------------------
# choosing a training run folder


@dataclass
class RunClaim:
    """A training run folder held by this process: its lock, whether it was created for this run, and the
    line that says where the run writes and why there."""

    path: Path
    lock: RunLock
    created: bool
    note: str

    def release(self) -> None:
        """Give up the lock; remove the folder when this run created it and left nothing in it."""
        self.lock.release()
        if self.created:
            try:
                self.path.rmdir()  # only succeeds when empty (a run that failed before writing anything)
            except OSError:
                pass


def claim_train_dir(out: str | Path | None, *, resume: str | Path | None = None, exist_ok: bool = False) -> RunClaim:
    """The folder a training run writes into, locked for it (the rule of the module docstring).

    ``out`` may be None with ``resume``; given with it, it must name the checkpoint's folder.
    """
    if resume is not None:
        ckpt = Path(resume)
        if not ckpt.is_file():
            raise FileNotFoundError(f"checkpoint not found: {ckpt}")
        run = ckpt.parent
        if out is not None and Path(out).resolve() != run.resolve():
            raise ValueError(
                f"--resume {ckpt} continues in its own folder {run}, but --out names {out}; "
                f"leave --out out or give --out {run}"
            )
        return RunClaim(run, acquire_lock(run), False, f"{run} (continuing from {ckpt})")
    if out is None:
        raise ValueError("no output folder: give --out (or --resume CKPT to continue a run)")
    out = Path(out)
    _check_folder(out)
    if exist_ok:
        existed = out.is_dir() and any(out.iterdir())
        out.mkdir(parents=True, exist_ok=True)
        note = f"{out} (--exist-ok: replacing the earlier run's files)" if existed else str(out)
        return RunClaim(out, acquire_lock(out), False, note)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if not any(out.iterdir()):
        lock = try_lock(out)
        if lock is not None:
            return RunClaim(out, lock, created, str(out))
    run = next_run_dir(out, start=2)
    lock = acquire_lock(run)
    return RunClaim(run, lock, True, f"{run} ({out} holds an earlier run; --exist-ok would replace it)")
