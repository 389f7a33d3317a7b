"""The conformance kit's targets: small, importable by any worker (they are part of fntree).

Each one exercises something a batch system must carry: values and specs out and
back, temp dirs on the worker's machine, failures, a worker that dies, jobs that
run long enough to be cancelled or to outlive their leader. Paths they are given
must be visible to the workers (the job store's filesystem, on a cluster).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import fntree


# -- values ------------------------------------------------------------------------------
@fntree.target
def square(i: int) -> int:
    return i * i


@fntree.target
def total(values: list[int]) -> int:
    return sum(values)


@fntree.target
def fan(n: int) -> fntree.Spawn:
    """Children, then a follow-on given their values."""
    leaves = [square(i) for i in range(n)]
    return fntree.children(*leaves).then(total(leaves))


@fntree.target
def countdown(n: int) -> object:
    """A chain of tail calls."""
    return n if n == 0 else countdown(n - 1)


@fntree.target
def pair(a: object, b: object) -> list[object]:
    return [a, b]


@fntree.target
def values(n: int) -> object:
    """A fan-out with a follow-on, promises nested in a call, and a tail call."""
    return pair(fan(n), pair(total([square(2), square(3)]), countdown(3)))


# -- temp dirs ---------------------------------------------------------------------------
@fntree.target
def temp_dirs(record: str) -> fntree.Spawn:
    """Writes in its local and global temp dirs, and records where they are."""
    ctx = fntree.context()
    (ctx.local_temp_dir / "scratch").write_text("local")
    (ctx.global_temp_dir / "shared").write_text("global")
    Path(record, "founder").write_text(f"{ctx.local_temp_dir}\n{ctx.global_temp_dir}")
    return fntree.follow_on(temp_follow(record, str(ctx.global_temp_dir)))


@fntree.target
def temp_follow(record: str, founder_gtd: str) -> dict[str, object]:
    ctx = fntree.context()
    (ctx.local_temp_dir / "scratch").write_text("local")
    Path(record, "follow").write_text(f"{ctx.local_temp_dir}\n{ctx.global_temp_dir}")
    return {"same_gtd": str(ctx.global_temp_dir) == founder_gtd,
            "shared": (ctx.global_temp_dir / "shared").read_text(),
            "local_exists": ctx.local_temp_dir.is_dir()}


# -- failures and retries ----------------------------------------------------------------
@fntree.target
def flaky(i: int) -> int:
    """Fails on its first attempt, returns on its retry."""
    if fntree.context().attempt == 1:
        raise RuntimeError(f"flaky {i} fails on its first attempt")
    return i


@fntree.target(retries=0)
def broken() -> int:
    raise ValueError("broken always fails")


@fntree.target
def flaky_fan(n: int) -> fntree.Spawn:
    leaves = [flaky(i) for i in range(n)]
    return fntree.children(*leaves).then(total(leaves))


@fntree.target(memory="64M")
def hungry() -> tuple[int, int | None]:
    """Out of memory on its first attempt; its retry is given twice the memory."""
    ctx = fntree.context()
    if ctx.attempt == 1:
        raise MemoryError("hungry wants more than it was given")
    return ctx.attempt, ctx.memory


@fntree.target(time="3s", memory="100M")
def overtime() -> tuple[int, float | None]:
    """Runs past its time on its first attempt; its retry is given twice the time."""
    ctx = fntree.context()
    if ctx.attempt == 1:
        print("sleeping past my time", flush=True)
        time.sleep(900)
    return ctx.attempt, ctx.time


@fntree.target(memory="100M")
def suicide(marker: str) -> tuple[int, int | None]:
    """SIGKILLs the process running it the first time: its worker dies, and the job is lost.

    Its own resources put it in a packet of its own, so the lost job is charged to it.
    """
    ctx = fntree.context()
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        print("killing my own process", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return ctx.attempt, ctx.memory


@fntree.target
def lost(marker: str, n: int) -> object:
    return pair(suicide(marker), fan(n))


# -- cancel and restart ------------------------------------------------------------------
@fntree.target(time="5m")
def pulse(record: str, i: int, seconds: float) -> int:
    """Rewrites `record/pulse-i` every 0.1 s for `seconds`: it shows whether a job still runs.

    Only its first attempt pulses; a later one (after a restart) returns at once.
    """
    path = Path(record, f"pulse-{i}")
    end = time.monotonic() + (seconds if fntree.context().attempt == 1 else 0)
    while time.monotonic() < end:
        path.write_text(str(time.time()))
        time.sleep(0.1)
    return i


@fntree.target
def pulses(record: str, n: int, seconds: float) -> fntree.Spawn:
    leaves = [pulse(record, i, seconds) for i in range(n)]
    return fntree.children(*leaves).then(total(leaves))


@fntree.target(time="5m")
def slow(record: str, i: int, seconds: float) -> int:
    """Sleeps `seconds`, then marks `record/done-i`."""
    time.sleep(seconds)
    Path(record, f"done-{i}").write_text("")
    return i


@fntree.target
def slow_fan(record: str, n: int, seconds: float) -> fntree.Spawn:
    leaves = [slow(record, i, seconds) for i in range(n)]
    return fntree.children(*leaves).then(total(leaves))


@fntree.target
def tiny_fan(n: int) -> fntree.Spawn:
    leaves = [square(i) for i in range(n)]
    return fntree.children(*leaves).then(total(leaves))
