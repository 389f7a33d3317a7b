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
import signal
import statistics
import subprocess
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


class KillAtEnd(Observer):
    """SIGKILLs this process once `n` leaves have completed or failed (after their commit)."""

    def __init__(self, n: int) -> None:
        self.left = n

    def completed(self, name: str, result: object) -> None:
        self._count(name)

    def failed(self, failure: object) -> None:
        self._count(getattr(failure, "name", "leaf"))

    def _count(self, name: str) -> None:
        if name.endswith("leaf"):
            self.left -= 1
            if self.left == 0:
                os.kill(os.getpid(), signal.SIGKILL)


def build_killed(n: int, store: Path, flag: Path) -> None:
    """The first run, in this (child) process, ended by a SIGKILL of its leader."""
    fntree.run(root(n, str(flag)), jobstore=store, retry_count=0, log_level="CRITICAL",
               observers=[KillAtEnd(n)])
    raise AssertionError("the leader should have been killed")


def first_run(n: int, store: Path, flag: Path, killed: bool) -> int:
    """Make the store; the number of leaves left failed (to run on restart)."""
    if killed:
        child = subprocess.run([sys.executable, __file__, str(n), "--build-killed", str(store),
                                str(flag)], check=False)
        assert child.returncode == -signal.SIGKILL, child.returncode
        return sum(1 for i in range(n) if i % 33331 == 7)
    try:
        fntree.run(root(n, str(flag)), jobstore=store, retry_count=0, log_level="CRITICAL")
        raise AssertionError("the first run should leave failed jobs")
    except fntree.WorkflowFailed as failed:
        return len(failed.failed)


def once(n: int, workdir: Path, killed: bool) -> tuple[float, float, int, int]:
    store, flag = workdir / "store", workdir / "flag"
    pending = first_run(n, store, flag, killed)
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
    parser.add_argument("--killed", action="store_true",
                        help="SIGKILL the first run's leader at its end (no final compaction)")
    parser.add_argument("--build-killed", nargs=2, metavar=("STORE", "FLAG"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_killed:
        build_killed(args.n, Path(args.build_killed[0]), Path(args.build_killed[1]))
    firsts, totals = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            first, whole, pending, journal = once(args.n, Path(tmp), args.killed)
        firsts.append(first)
        totals.append(whole)
        print(f"store: {args.n - pending} jobs completed, {pending} pending; journal "
              f"{journal / 1e6:.1f} MB; first issue after {first:.3f} s, "
              f"run done after {whole:.3f} s", flush=True)
    how = "SIGKILLed" if args.killed else "stopped"
    print(f"restart of {args.n}-job store ({how} leader): first job issued after "
          f"{statistics.median(firsts):.3f} s, run complete after "
          f"{statistics.median(totals):.3f} s (median of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
