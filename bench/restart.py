"""Restart: how soon a restarted leader issues work on a store holding many completed jobs.

Builds a job store with N completed jobs and a few pending ones (a fan-out of N
leaves in which a few fail until a flag file exists, run with no retries), then
restarts it and prints the seconds from `fntree.restart` being called to the
first job issued, and to the run's end. `--repeat K` prints the medians.

    python bench/restart.py 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import fntree
from fntree.runtime.events import Observer

FAILING = 3


@fntree.target
def leaf(i: int, flag: str) -> int:
    if i % 33331 == 7 and not os.path.exists(flag):
        raise RuntimeError("not yet")
    return i


@fntree.target
def total(values: list[int]) -> int:
    return sum(values)


@fntree.target
def root(n: int, flag: str) -> fntree.Call:
    return total([leaf(i, flag) for i in range(n)])


class FirstIssue(Observer):
    def __init__(self) -> None:
        self.at: float | None = None

    def issued(self, tasks: list[object]) -> None:
        if self.at is None:
            self.at = time.perf_counter()


def once(n: int, workdir: Path) -> tuple[float, float, int, int]:
    store, flag = workdir / "store", workdir / "flag"
    try:
        fntree.run(root(n, str(flag)), jobstore=store, retry_count=0, log_level="CRITICAL")
        raise AssertionError("the first run should leave failed jobs")
    except fntree.WorkflowFailed as failed:
        pending = len(failed.failed)
    journal = sum(p.stat().st_size for p in (store / "journal").iterdir())
    flag.write_text("")
    watch = FirstIssue()
    started = time.perf_counter()
    value = fntree.restart(store, observers=[watch], log_level="CRITICAL")
    ended = time.perf_counter()
    assert value == n * (n - 1) // 2 and watch.at is not None
    return watch.at - started, ended - started, pending, journal


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    firsts, totals = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            first, whole, pending, journal = once(args.n, Path(tmp))
        firsts.append(first)
        totals.append(whole)
        print(f"store: {args.n - pending} jobs completed, {pending} pending; journal "
              f"{journal / 1e6:.1f} MB; first issue after {first:.3f} s, "
              f"run done after {whole:.3f} s", flush=True)
    print(f"restart of {args.n}-job store: first job issued after "
          f"{statistics.median(firsts):.3f} s, run complete after "
          f"{statistics.median(totals):.3f} s (median of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
