"""Chain: N follow-ons one after another, each job returning the next as a tail call.

Prints hops/s from the first hop's start to the run's value (the median of
`--repeat K` runs), through a durable job store in a temp dir, and the CPU per
hop of the workers (their start-up included) and of the leader (this process).

    python bench/chain.py 2000 --repeat 3
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
def hop(remaining: int, started: float) -> float | fntree.Call:
    if remaining == 0:
        return started
    return hop(remaining - 1, started)


@fntree.target
def start(n: int) -> fntree.Call:
    return hop(n, time.time())


def cpu_seconds(who: int) -> float:
    """User + system CPU seconds of `who` (RUSAGE_SELF, or RUSAGE_CHILDREN: the reaped workers)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_chain(n: int, jobstore: Path) -> tuple[float, float, float, float]:
    """Seconds from the first hop's start to the value, for all of `fntree.run`, and the
    CPU seconds of the leader and of the workers during it."""
    run = fntree.run  # the leader's side is imported on first use: not a cost per job
    leader0, workers0 = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
    called = time.time()
    started = run(start(n), jobstore=jobstore)
    now = time.time()
    return (now - started, now - called, cpu_seconds(resource.RUSAGE_SELF) - leader0,
            cpu_seconds(resource.RUSAGE_CHILDREN) - workers0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=2000, help="follow-ons (2000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; the median is printed")
    args = parser.parse_args()
    if args.n < 1 or args.repeat < 1:
        parser.error("N and --repeat must be at least 1")
    with tempfile.TemporaryDirectory(prefix="fntree-bench-") as scratch:
        runs = [run_chain(args.n, Path(scratch) / f"jobstore-{k}") for k in range(args.repeat)]
    wall = statistics.median(r[0] for r in runs)
    whole = statistics.median(r[1] for r in runs)
    leader_us = statistics.median(r[2] for r in runs) / args.n * 1e6
    worker_us = statistics.median(r[3] for r in runs) / args.n * 1e6
    print(f"chain N={args.n:,} follow-ons, median of {args.repeat}")
    print(f"fntree: {wall:.2f} s, {args.n / wall:,.0f} hops/s "
          f"({whole:.2f} s for all of fntree.run)")
    print(f"CPU per hop: workers {worker_us:.1f} us (start-up included), "
          f"leader {leader_us:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
