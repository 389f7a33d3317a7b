"""Targets for the end-to-end tests on Slurm (tests/test_slurm.py); importable by workers."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import fntree


@fntree.target(memory="200M")
def memory_hog(megabytes: int) -> tuple[int, int | None]:
    """Touches `megabytes` MB: more than it asks for on its first attempt, less on its retry."""
    block = bytearray(megabytes * 1_000_000)
    for i in range(0, len(block), 4096):
        block[i] = 1
    ctx = fntree.context()
    return ctx.attempt, ctx.memory


@fntree.target(time="30s", memory="100M")
def overtime() -> tuple[int, float | None]:
    """Sleeps past its time on its first attempt; its retry, given twice the time, returns."""
    ctx = fntree.context()
    if ctx.attempt == 1:
        print("sleeping past my time", flush=True)
        time.sleep(600)
    return ctx.attempt, ctx.time


@fntree.target
def where() -> dict[str, object]:
    """The Slurm job running this target, and its local temp dir (existing now)."""
    ctx = fntree.context()
    (ctx.local_temp_dir / "scratch").write_text("x")
    return {"slurm_job": os.environ.get("SLURM_JOB_ID"), "local": str(ctx.local_temp_dir),
            "local_exists": ctx.local_temp_dir.is_dir(), "host": os.uname().nodename}


@fntree.target(time="5m")
def guarded_leaf(i: int, delay: float, record: str, locks: str) -> int:
    """Sleeps `delay` s holding a lock named after its job: a second run at once is recorded.

    Appends "start JOB SLURM_ID" when it starts and "end JOB SLURM_ID" when it ends.
    """
    ctx = fntree.context()
    slurm_id = os.environ.get("SLURM_JOB_ID", "-")
    with open(Path(locks) / ctx.job_id, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _append(record, f"overlap {ctx.job_id} {slurm_id}")
            raise
        _append(record, f"start {ctx.job_id} {slurm_id}")
        time.sleep(delay)
        _append(record, f"end {ctx.job_id} {slurm_id}")
    return i


@fntree.target
def guarded_fan(n: int, delay: float, record: str, locks: str, memory: int) -> fntree.Spawn:
    leaves = [guarded_leaf.options(memory=memory)(i, delay, record, locks) for i in range(n)]
    return fntree.children(*leaves).then(total(leaves))


@fntree.target
def total(values: list[int]) -> int:
    return sum(values)


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)
