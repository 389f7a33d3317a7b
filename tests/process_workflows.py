"""Targets for the tests of processes, time limits and silence (tests/test_local.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import fntree

SLEEPER = "import time; time.sleep(1000)"


@fntree.target
def orphan_step(out: str, pidfile: str, mark: str) -> str:
    """Safe to re-run one at a time: writes a header, then a body, and returns the file.

    It also leaves a `setsid` daemon and a double-forked process behind, both
    carrying `mark` on their command lines.
    """
    subprocess.Popen(["setsid", sys.executable, "-c", SLEEPER, mark])
    subprocess.run(["sh", "-c", f"({sys.executable} -c '{SLEEPER}' {mark} &)"], check=True)
    with open(pidfile, "a") as f:
        f.write(f"{os.getpid()}\n")
    subprocess.run(["sh", "-c", f"printf 'header\\n' > {out}; sleep 3; printf 'body\\n' >> {out}"],
                   check=True)
    with open(out) as f:
        return f.read()


@fntree.target
def nap(i: int, delay: float) -> int:
    time.sleep(delay)
    return i


@fntree.target
def naps(n: int, delay: float) -> fntree.Spawn:
    kids = [nap(i, delay) for i in range(n)]
    return fntree.children(*kids).then(add_up(kids))


@fntree.target
def add_up(values: list[int]) -> int:
    return sum(values)


@fntree.target(time=1)
def overstays() -> float | None:
    """Runs forever on its first attempt; returns the time its retry was given."""
    if fntree.context().attempt == 1:
        time.sleep(1000)
    return fntree.context().time


@fntree.target
def forever() -> None:
    time.sleep(1000)


@fntree.target
def stopped_once(pidfile: str) -> int:
    """Writes its worker's pid and waits (to be SIGSTOPped) on its first attempt."""
    ctx = fntree.context()
    if ctx.attempt == 1:
        with open(pidfile, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(1000)
    return ctx.attempt


@fntree.target
def hangs_in_c_once() -> int:
    """On its first attempt, blocks in C code that holds the interpreter (no heartbeat)."""
    import ctypes

    ctx = fntree.context()
    if ctx.attempt == 1:
        ctypes.PyDLL(None).sleep(1000)  # PyDLL keeps the GIL held during the call
    return ctx.attempt


@fntree.target
def sorts_holding_the_interpreter(n: int) -> int:
    """One long C call that holds the interpreter (sorting `n` floats): busy, not hung."""
    import random

    rng = random.Random(1)
    values = [rng.random() for _ in range(n)]
    values.sort()
    return fntree.context().attempt
