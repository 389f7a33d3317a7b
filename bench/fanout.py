"""Fan-out: a root with N trivial children and a follow-on summing their values.

Prints N, the wall time from the root's start to its value (and of the whole
`fntree.run` call), jobs/s, the leader's peak RSS (the leader runs in this
process) and its CPU per job, and the workers' CPU per job (user + system time of
the worker processes, their start-up included, divided by the jobs); then the same
N no-op calls through
`multiprocessing.Pool(os.cpu_count()).apply_async`, timed from the pool's
creation to the last result, and fntree's fraction of its rate.
The job store is durable (a directory in a temp dir), so every completion is
fsynced. `--repeat K` prints the median of K runs; `--progress` draws the live
display (as on a terminal, to stderr) to measure what it costs; `--no-pool`
leaves the pool out.

    python bench/fanout.py 10000 --repeat 3
    python bench/fanout.py 10000 --repeat 3 --progress 2>/dev/null
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import fntree


@fntree.target
def noop(i: int) -> int:
    return i


@fntree.target
def total(values: list[int], started: float) -> tuple[int, float]:
    return sum(values), started


@fntree.target
def root(n: int) -> fntree.Call:
    return total([noop(i) for i in range(n)], time.time())


def cpu_seconds(who: int) -> float:
    """User + system CPU seconds of `who` (RUSAGE_SELF, or RUSAGE_CHILDREN: the reaped workers)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_fntree(n: int, jobstore: Path, progress: bool = False
               ) -> tuple[float, float, float, float]:
    """Seconds from the root's start to its value, for all of `fntree.run`, and the CPU
    seconds of the leader (this process) and of the workers during it.

    With `progress`, the live display draws to stderr as on a terminal.
    """
    observers = []
    if progress:
        from rich.console import Console

        from fntree.progress import LiveProgress

        observers.append(LiveProgress(Console(stderr=True, force_terminal=True, width=120)))
    run = fntree.run  # the leader's side is imported on first use: not a cost per job
    leader0, workers0 = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
    called = time.time()
    value, started = run(root(n), jobstore=jobstore, observers=observers)
    now = time.time()
    assert value == n * (n - 1) // 2, value
    return (now - started, now - called, cpu_seconds(resource.RUSAGE_SELF) - leader0,
            cpu_seconds(resource.RUSAGE_CHILDREN) - workers0)


def pool_noop(i: int) -> int:
    return i


def run_pool(n: int) -> float:
    """Seconds for N no-op calls through a process pool, its start-up included."""
    started = time.perf_counter()
    with multiprocessing.Pool(os.cpu_count()) as pool:
        results = [pool.apply_async(pool_noop, (i,)) for i in range(n)]
        value = sum(r.get() for r in results)
    assert value == n * (n - 1) // 2, value
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=10_000, help="children (10000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; the median is printed")
    parser.add_argument("--progress", action="store_true",
                        help="draw the live progress display (to stderr) during the runs")
    parser.add_argument("--no-pool", action="store_true", help="leave out the pool's runs")
    args = parser.parse_args()
    if args.n < 1 or args.repeat < 1:
        parser.error("N and --repeat must be at least 1")
    jobs = args.n + 2  # the root, its children and its follow-on
    with tempfile.TemporaryDirectory(prefix="fntree-bench-") as scratch:
        runs = [run_fntree(args.n, Path(scratch) / f"jobstore-{k}", args.progress)
                for k in range(args.repeat)]
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall = statistics.median(r[0] for r in runs)
    whole = statistics.median(r[1] for r in runs)
    leader_us = statistics.median(r[2] for r in runs) / jobs * 1e6
    worker_us = statistics.median(r[3] for r in runs) / jobs * 1e6
    shown = " with the live progress display" if args.progress else ""
    print(f"fanout N={args.n:,} ({jobs:,} jobs){shown}, median of {args.repeat}")
    print(f"fntree: {wall:.2f} s root start to value, {jobs / wall:,.0f} jobs/s, "
          f"leader peak RSS {rss_mib:,.0f} MiB ({whole:.2f} s for all of fntree.run)")
    print(f"CPU per job: workers {worker_us:.1f} us (start-up included), "
          f"leader {leader_us:.1f} us")
    if args.no_pool:
        return 0
    pools = [run_pool(args.n) for _ in range(args.repeat)]
    pool = statistics.median(pools)
    print(f"Pool({os.cpu_count()}).apply_async: {pool:.2f} s, {args.n / pool:,.0f} calls/s")
    print(f"fntree / pool: {(jobs / wall) / (args.n / pool):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
