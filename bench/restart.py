"""Restart: how soon a restarted leader issues work on a store holding many completed jobs.

Builds a job store with N completed jobs and a few pending ones (N leaves in
which a few fail until a flag file exists, run with no retries): by default N/1000
middles of 1000 leaves each, with follow-ons summing (the 1,000 x 1,000 and
10,000 x 1,000 trees of issue 13); `--flat`, one fan-out of N leaves, whose
follow-on keeps all N values live. Then it restarts it and prints the seconds
(wall, and the leader's CPU) from `fntree.restart` being called to the first
job issued, and to the run's end. `--killed` SIGKILLs the first run's leader at
its end, so the store is left as a crash leaves it (no final compaction).
`--repeat K` restarts K copies of the one store built and prints the medians.

    python bench/restart.py 1000000 --killed --repeat 3
    python bench/restart.py 100000 --flat --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
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


@fntree.target
def middle(first: int, leaves: int, flag: str) -> fntree.Call:
    return total([leaf(first + i, flag) for i in range(leaves)])


@fntree.target
def tree(n: int, flag: str) -> fntree.Call:
    width = max(1, n // 1000)
    return total([middle(w * (n // width), n // width, flag) for w in range(width)])


def size(n: int, flat: bool) -> int:
    """How many leaves the store's run makes."""
    return n if flat else max(1, n // 1000) * (n // max(1, n // 1000))


class FirstIssue(Observer):
    def __init__(self) -> None:
        self.at: float | None = None
        self.cpu = 0.0

    def issued(self, tasks: list[object]) -> None:
        if self.at is None:
            self.at = time.perf_counter()
            self.cpu = time.process_time()


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


def build_killed(n: int, flat: bool, store: Path, flag: Path) -> None:
    """The first run, in this (child) process, ended by a SIGKILL of its leader."""
    call = root(n, str(flag)) if flat else tree(n, str(flag))
    fntree.run(call, jobstore=store, retry_count=0, log_level="CRITICAL",
               observers=[KillAtEnd(size(n, flat))])
    raise AssertionError("the leader should have been killed")


def first_run(n: int, flat: bool, store: Path, flag: Path, killed: bool) -> int:
    """Make the store; the number of leaves left failed (to run on restart)."""
    if killed:
        child = subprocess.run([sys.executable, __file__, str(n), *(["--flat"] if flat else []),
                                "--build-killed", str(store), str(flag)], check=False)
        assert child.returncode == -signal.SIGKILL, child.returncode
        return sum(1 for i in range(size(n, flat)) if i % 33331 == 7)
    try:
        call = root(n, str(flag)) if flat else tree(n, str(flag))
        fntree.run(call, jobstore=store, retry_count=0, log_level="CRITICAL")
        raise AssertionError("the first run should leave failed jobs")
    except fntree.WorkflowFailed as failed:
        return len(failed.failed)


def restart_once(store: Path, leaves: int) -> tuple[float, float, float]:
    """(seconds to the first job issued, the leader's CPU seconds to it, seconds to the end)."""
    watch = FirstIssue()
    started, cpu = time.perf_counter(), time.process_time()
    value = fntree.restart(store, observers=[watch], log_level="CRITICAL")
    ended = time.perf_counter()
    assert value == leaves * (leaves - 1) // 2 and watch.at is not None
    return watch.at - started, watch.cpu - cpu, ended - started


def journal_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in (store / "journal").iterdir())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--flat", action="store_true", help="one fan-out of N leaves")
    parser.add_argument("--killed", action="store_true",
                        help="SIGKILL the first run's leader at its end (no final compaction)")
    parser.add_argument("--build-killed", nargs=2, metavar=("STORE", "FLAG"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_killed:
        build_killed(args.n, args.flat, Path(args.build_killed[0]), Path(args.build_killed[1]))
    leaves = size(args.n, args.flat)
    with tempfile.TemporaryDirectory() as tmp:
        built, flag = Path(tmp) / "built", Path(tmp) / "flag"
        began = time.perf_counter()
        pending = first_run(args.n, args.flat, built, flag, args.killed)
        print(f"store: {leaves - pending} leaves completed, {pending} pending, built in "
              f"{time.perf_counter() - began:.0f} s; journal {journal_bytes(built) / 1e6:.1f} MB",
              flush=True)
        flag.write_text("")
        firsts, cpus, totals = [], [], []
        for k in range(args.repeat):
            store = Path(tmp) / f"store-{k}"
            shutil.copytree(built, store, symlinks=True)
            first, cpu, whole = restart_once(store, leaves)
            shutil.rmtree(store)
            firsts.append(first)
            cpus.append(cpu)
            totals.append(whole)
            print(f"first issue after {first:.3f} s (leader CPU {cpu:.3f} s), run done after "
                  f"{whole:.3f} s; load average {os.getloadavg()[0]:.1f}", flush=True)
    how = "SIGKILLed" if args.killed else "stopped"
    shape = "flat" if args.flat else "tree"
    print(f"restart of {args.n}-job {shape} store ({how} leader): first job issued after "
          f"{statistics.median(firsts):.3f} s (leader CPU {statistics.median(cpus):.3f} s), "
          f"run complete after {statistics.median(totals):.3f} s (median of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
