"""Fib: the dynamic fib(N), each call making its two calls at run time.

`fib(n)` returns `add(fib(n - 1), fib(n - 2))`: fib(18) makes 8,361 fib calls and
4,180 adds (12,541 jobs), none known before the call above it ran. Prints fib
calls/s and jobs/s from the root's start to the value (the median of `--repeat K`
runs, through a durable job store in a temp dir), and the CPU per job of the
workers (their start-up included) and of the leader (this process).

    python bench/fib.py 18 --repeat 3
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import fntree


@fntree.target
def add(a: int, b: int) -> int:
    return a + b


@fntree.target
def fib(n: int) -> int | fntree.Call:
    if n < 2:
        return n
    return add(fib(n - 1), fib(n - 2))


@fntree.target
def start(n: int) -> fntree.Call:
    return stamp(fib(n), time.time())


@fntree.target
def stamp(value: int, started: float) -> tuple[int, float]:
    return value, started


def fib_value(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def cpu_seconds(who: int) -> float:
    """User + system CPU seconds of `who` (RUSAGE_SELF, or RUSAGE_CHILDREN: the reaped workers)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_fib(n: int, jobstore: Path) -> tuple[float, float, float, float]:
    """Seconds from the root's start to the value, for all of `fntree.run`, and the CPU
    seconds of the leader and of the workers during it."""
    run = fntree.run  # the leader's side is imported on first use: not a cost per job
    leader0, workers0 = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
    called = time.time()
    value, started = run(start(n), jobstore=jobstore)
    now = time.time()
    assert value == fib_value(n), value
    return (now - started, now - called, cpu_seconds(resource.RUSAGE_SELF) - leader0,
            cpu_seconds(resource.RUSAGE_CHILDREN) - workers0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=18, help="fib of what (18)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; the median is printed")
    args = parser.parse_args()
    if args.n < 2 or args.repeat < 1:
        parser.error("N must be at least 2 and --repeat at least 1")
    calls = 2 * fib_value(args.n + 1) - 1
    jobs = calls + (calls - 1) // 2 + 2  # the fib calls, their adds, the root and its stamp
    with tempfile.TemporaryDirectory(prefix="fntree-bench-") as scratch:
        runs = [run_fib(args.n, Path(scratch) / f"jobstore-{k}") for k in range(args.repeat)]
    wall = statistics.median(r[0] for r in runs)
    whole = statistics.median(r[1] for r in runs)
    leader_us = statistics.median(r[2] for r in runs) / jobs * 1e6
    worker_us = statistics.median(r[3] for r in runs) / jobs * 1e6
    print(f"fib({args.n}): {calls:,} calls ({jobs:,} jobs), median of {args.repeat}")
    print(f"fntree: {wall:.2f} s, {calls / wall:,.0f} calls/s, {jobs / wall:,.0f} jobs/s "
          f"({whole:.2f} s for all of fntree.run)")
    print(f"CPU per job: workers {worker_us:.1f} us (start-up included), "
          f"leader {leader_us:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
