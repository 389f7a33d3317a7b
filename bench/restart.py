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
While a `--killed` store is built, the build's leader (a child process) is
sampled every `--every` seconds: its RSS and the job store's size, printed with
the leaves done every `--report` seconds, and their peaks at the end (with the
leader's `ru_maxrss`, read once it is reaped), so one 10,000,000-job build gives
the completion, the leader's peak RSS, the store's largest size and the restart.

    python bench/restart.py 1000000 --killed --repeat 3
    python bench/restart.py 100000 --flat --repeat 3
    python bench/restart.py 10000000 --killed --dir /big/disk --report 60
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
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
    """SIGKILLs this process once `n` leaves have completed or failed (after their commit);
    writes the leaves done so far to `progress` every second or so."""

    def __init__(self, n: int, progress: Path) -> None:
        self.left, self.n, self.progress = n, n, progress
        self.noted = time.monotonic()

    def completed(self, name: str, result: object) -> None:
        self._count(name)

    def failed(self, failure: object) -> None:
        self._count(getattr(failure, "name", "leaf"))

    def _count(self, name: str) -> None:
        if name.endswith("leaf"):
            self.left -= 1
            if self.left == 0:
                os.kill(os.getpid(), signal.SIGKILL)
            if self.left % 1000 == 0 and time.monotonic() - self.noted > 1:
                self.noted = time.monotonic()
                self.progress.write_text(str(self.n - self.left))


def build_killed(n: int, flat: bool, store: Path, flag: Path) -> None:
    """The first run, in this (child) process, ended by a SIGKILL of its leader."""
    call = root(n, str(flag)) if flat else tree(n, str(flag))
    fntree.run(call, jobstore=store, retry_count=0, log_level="CRITICAL",
               observers=[KillAtEnd(size(n, flat), store.with_name("progress"))])
    raise AssertionError("the leader should have been killed")


def disk_bytes(path: Path) -> int:
    """Bytes in the files under `path` (0 while it does not exist)."""
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def rss_of(pid: int) -> int:
    """The resident set of process `pid` now (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0


class BuildSampler(threading.Thread):
    """Samples the building leader's RSS and the job store's size every `every` seconds;
    prints them with the leaves done every `report` seconds (0: never)."""

    def __init__(self, pid: int, store: Path, every: float, report: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.store, self.every, self.report = pid, store, every, report
        self.begun = time.monotonic()
        self.rss = self.size = 0
        self.halt = threading.Event()

    def run(self) -> None:
        last, last_done = self.begun, 0
        progress = self.store.with_name("progress")
        while not self.halt.wait(self.every):
            rss, size = rss_of(self.pid), disk_bytes(self.store)
            self.rss, self.size = max(self.rss, rss), max(self.size, size)
            now = time.monotonic()
            if self.report and now - last >= self.report:
                done = int(progress.read_text() or 0) if progress.exists() else 0
                print(f"  {now - self.begun:7.0f} s: {done:,} leaves done, "
                      f"{(done - last_done) / (now - last):,.0f} leaves/s; leader RSS "
                      f"{rss / 2**20:,.0f} MiB (peak {self.rss / 2**20:,.0f}); job store "
                      f"{size / 2**20:,.1f} MiB (most {self.size / 2**20:,.1f}); load "
                      f"{os.getloadavg()[0]:.1f}", flush=True)
                last, last_done = now, done


def build(n: int, flat: bool, store: Path, flag: Path, every: float, report: float) -> None:
    """Builds the store in a child process whose leader is SIGKILLed at its end, sampled."""
    child = subprocess.Popen([sys.executable, __file__, str(n), *(["--flat"] if flat else []),
                              "--build-killed", str(store), str(flag)])
    sampler = BuildSampler(child.pid, store, every, report)
    sampler.start()
    returncode = child.wait()
    sampler.halt.set()
    sampler.join()
    assert returncode == -signal.SIGKILL, returncode
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(f"build: leader RSS sampled peak {sampler.rss / 2**20:,.0f} MiB (ru_maxrss "
          f"{maxrss / 2**20:,.0f} MiB); job store at most {sampler.size / 2**20:,.1f} MiB "
          f"while running, {disk_bytes(store) / 2**20:,.1f} MiB when killed", flush=True)


def first_run(n: int, flat: bool, store: Path, flag: Path, killed: bool,
              every: float = 2.0, report: float = 0.0) -> int:
    """Make the store; the number of leaves left failed (to run on restart)."""
    if killed:
        build(n, flat, store, flag, every, report)
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
    parser.add_argument("--every", type=float, default=2.0,
                        help="sampling interval of a --killed build (2 s)")
    parser.add_argument("--report", type=float, default=0.0,
                        help="print a --killed build's progress every this many seconds")
    parser.add_argument("--dir", default=None, help="where the job stores go (a temp dir)")
    parser.add_argument("--build-killed", nargs=2, metavar=("STORE", "FLAG"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_killed:
        build_killed(args.n, args.flat, Path(args.build_killed[0]), Path(args.build_killed[1]))
    leaves = size(args.n, args.flat)
    with tempfile.TemporaryDirectory(prefix="fntree-restart-", dir=args.dir) as tmp:
        built, flag = Path(tmp) / "built", Path(tmp) / "flag"
        began = time.perf_counter()
        pending = first_run(args.n, args.flat, built, flag, args.killed, args.every,
                            args.report)
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
