"""Run folders: predict's fresh run-NNN, training's rule (OUT when empty, else OUT/run-NNN; --exist-ok; --resume),
the lock that keeps two processes out of one folder, and the DDP ranks agreeing on the folder."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as tdist

from hrnet.cli_common import make_run_dir as cli_make_run_dir
from hrnet.engine.distributed import DistInfo
from hrnet.engine.launch import claimed_run_dir
from hrnet.engine.rundir import (
    LOCK_NAME,
    RunLockedError,
    acquire_lock,
    claim_train_dir,
    make_run_dir,
)

SINGLE = DistInfo(0, 1, 0, torch.device("cpu"))
# forked workers start at once (spawned ones import torch again, seconds each on a busy machine)
CTX = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_predict_run_dirs_count_up_and_exist_ok_is_out_itself(tmp_path):
    out = tmp_path / "pred"
    assert make_run_dir(out) == out / "run-001"
    assert cli_make_run_dir(out) == out / "run-002"  # the CLI helper is the engine's rule
    (out / "run-007").mkdir()
    assert make_run_dir(out) == out / "run-008"
    assert make_run_dir(out, exist_ok=True) == out
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="file: --out exists and is not a folder"):
        make_run_dir(tmp_path / "file")


def test_training_rule_out_when_empty_else_a_fresh_run_folder(tmp_path):
    out = tmp_path / "runs" / "x"
    first = claim_train_dir(out)  # does not exist: created and used
    assert first.path == out and first.note == str(out)
    assert (out / LOCK_NAME).read_text().split()[0] == str(os.getpid())
    (out / "last.pt").write_bytes(b"run 1")
    first.release()
    assert not (out / LOCK_NAME).exists() and (out / "last.pt").read_bytes() == b"run 1"

    second = claim_train_dir(out)  # holds a run: a fresh sub-folder, numbered after the first run
    assert second.path == out / "run-002" and "holds an earlier run" in second.note
    third = claim_train_dir(out)  # while the second still runs
    assert third.path == out / "run-003"
    second.release()
    third.release()
    assert not (out / "run-002").exists() and not (out / "run-003").exists()  # left empty: removed

    empty = tmp_path / "empty"
    empty.mkdir()
    assert claim_train_dir(empty).path == empty  # an existing empty folder is used as it is

    replaced = claim_train_dir(out, exist_ok=True)
    assert replaced.path == out and "replacing" in replaced.note
    replaced.release()
    assert out.is_dir()  # exist_ok never removes the folder it was given


def test_resume_continues_in_the_checkpoint_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"ckpt")
    claim = claim_train_dir(None, resume=run / "last.pt")
    assert claim.path == run and "continuing from" in claim.note
    claim.release()
    assert claim_train_dir(run, resume=run / "last.pt").path == run  # --out naming the same folder is fine
    with pytest.raises(ValueError, match=r"continues in its own folder .*run, but --out names .*other"):
        claim_train_dir(tmp_path / "other", resume=run / "last.pt")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        claim_train_dir(None, resume=run / "missing.pt")
    with pytest.raises(ValueError, match="no output folder"):
        claim_train_dir(None)


def test_a_held_lock_is_an_error_naming_the_folder(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_NAME).write_text(f"{sleeper.pid} {socket.gethostname()}\n")
        with pytest.raises(RunLockedError) as err:
            acquire_lock(tmp_path)
        assert str(err.value).startswith(f"{tmp_path}: another training (pid {sleeper.pid}) is writing")
        assert isinstance(err.value, OSError)  # the CLI's one-line error, exit status 2
        assert (tmp_path / LOCK_NAME).read_text().split()[0] == str(sleeper.pid)  # left as it was
    finally:
        sleeper.kill()
        sleeper.wait()
    # a lock of another machine is never judged by a local pid
    (tmp_path / LOCK_NAME).write_text(f"{_dead_pid()} some-other-host\n")
    with pytest.raises(RunLockedError, match="on some-other-host"):
        acquire_lock(tmp_path)


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    dead = _dead_pid()
    (tmp_path / LOCK_NAME).write_text(f"{dead} {socket.gethostname()}\n")
    with caplog.at_level(logging.WARNING, logger="hrnet.engine"):
        lock = acquire_lock(tmp_path)
    assert f"taking over the stale lock {tmp_path / LOCK_NAME} (pid {dead}, no longer running)" in caplog.text
    assert (tmp_path / LOCK_NAME).read_text().split()[0] == str(os.getpid())
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()
    assert not list(tmp_path.iterdir())  # no moved-aside lock left behind
    # a lock file that stays empty (its creator died before writing its pid) is stale too
    (tmp_path / LOCK_NAME).write_text("")
    lock = acquire_lock(tmp_path, wait_s=0.1)
    lock.release()


def test_release_never_removes_a_lock_another_process_holds(tmp_path):
    lock = acquire_lock(tmp_path)
    (tmp_path / LOCK_NAME).write_text("1 elsewhere\n")  # taken over by someone else meanwhile
    lock.release()
    assert (tmp_path / LOCK_NAME).read_text() == "1 elsewhere\n"


def _claim_in_process(out: str, start, results) -> None:
    start.wait()
    claim = claim_train_dir(out)
    results.put(str(claim.path))
    start.wait()  # hold the folder until every process has claimed one
    claim.release()


def test_processes_started_together_get_one_folder_each(tmp_path):
    """Four trainings into one empty --out at the same moment: one gets OUT, the others fresh run folders."""
    n = 4
    start, results = CTX.Barrier(n), CTX.Queue()
    procs = [CTX.Process(target=_claim_in_process, args=(str(tmp_path / "out"), start, results)) for _ in range(n)]
    for p in procs:
        p.start()
    paths = sorted(results.get(timeout=60) for _ in range(n))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    out = tmp_path / "out"
    assert paths == sorted([str(out), *(str(out / f"run-{i:03d}") for i in range(2, n + 1))])


def test_single_process_claimed_run_dir_prints_the_folder(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "metrics.jsonl").write_text("{}\n")
    with claimed_run_dir(tmp_path / "x", resume=None, exist_ok=False, dist=SINGLE) as run:
        assert run == tmp_path / "x" / "run-002" and (run / LOCK_NAME).is_file()
        (run / "metrics.jsonl").write_text("{}\n")
    assert not (run / LOCK_NAME).exists()
    err = capsys.readouterr().err
    assert err == f"training run: {run} ({tmp_path / 'x'} holds an earlier run; --exist-ok would replace it)\n"
    # --exist-ok: the earlier run's training files go, other files stay
    with claimed_run_dir(tmp_path / "x", resume=None, exist_ok=True, dist=SINGLE) as run:
        assert run == tmp_path / "x"
    assert not (tmp_path / "x" / "metrics.jsonl").exists() and (tmp_path / "x" / "run-002").is_dir()


def _ddp_claim(rank: int, world: int, port: int, out: str, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", rank=rank, world_size=world)
    dist = DistInfo(rank, world, rank, torch.device("cpu"))
    try:
        with claimed_run_dir(out, resume=None, exist_ok=False, dist=dist) as run:
            locked = (run / LOCK_NAME).read_text().split()[0]
            tdist.barrier()
            results.put((rank, "ok", str(run), locked))
            tdist.barrier()
        with claimed_run_dir(out, resume=None, exist_ok=True, dist=dist):  # held by a live process: all raise
            results.put((rank, "entered", "", ""))
    except RunLockedError as err:
        results.put((rank, "locked", str(err), ""))
    finally:
        tdist.destroy_process_group()


@pytest.mark.skipif(not tdist.is_available(), reason="torch.distributed not built")
def test_ddp_ranks_agree_on_the_folder_rank0_alone_locks_it(tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    (out / "last.pt").write_bytes(b"an earlier run")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = CTX.Queue()
    try:
        (out / LOCK_NAME).write_text(f"{sleeper.pid} {socket.gethostname()}\n")
        procs = [CTX.Process(target=_ddp_claim, args=(r, 2, port, str(out), results)) for r in range(2)]
        for p in procs:
            p.start()
        got = sorted(results.get(timeout=120) for _ in range(4))
        for p in procs:
            p.join(timeout=60)
    finally:
        sleeper.kill()
        sleeper.wait()
    ok = [g for g in got if g[1] == "ok"]
    locked = [g for g in got if g[1] == "locked"]
    assert [g[2] for g in ok] == [str(out / "run-002")] * 2  # both ranks write the one folder rank 0 chose
    assert {g[3] for g in ok} == {str(procs[0].pid)}  # and the lock is rank 0's
    assert len(locked) == 2 and all(f"{out}: another training (pid {sleeper.pid})" in g[2] for g in locked)
    assert sorted(p.name for p in out.iterdir()) == sorted([LOCK_NAME, "last.pt"])  # run-002 left empty: removed
    assert (out / "last.pt").read_bytes() == b"an earlier run"
