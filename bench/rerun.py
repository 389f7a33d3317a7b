"""`--rerun-changed`: what the restart itself costs on a store of many completed jobs.

Runs a fan-out of N pure leaves (`cache=True`) and a follow-on summing them to
completion, with a cache; then `fntree.restart(store, rerun_changed=True)` from
this same script (so its targets are compared with and re-bound to the code
here). Printed: the seconds from the call to the first job issued (recovery,
the code comparison, the RERUN record and its commit), and to the end of the
re-run (every leaf a cache hit), beside the first run's time. `--repeat K`
prints the medians. With `--failed` the first run fails at its follow-on, so
the store's journal still holds every completion (a completed run's store is
compacted to a snapshot without them) and the restart replays them all.

    python bench/rerun.py 10000 --repeat 3
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


@fntree.target(cache=True)
def leaf(i: int) -> int:
    return i


@fntree.target
def total(values: list[int], flag: str) -> int:
    if not os.path.exists(flag):
        raise RuntimeError("not yet")
    return sum(values)


@fntree.target
def root(n: int, flag: str) -> fntree.Call:
    return total([leaf(i) for i in range(n)], flag)


class FirstIssue(Observer):
    def __init__(self) -> None:
        self.at: float | None = None

    def issued(self, tasks: list[object]) -> None:
        if self.at is None:
            self.at = time.perf_counter()


def once(n: int, workdir: Path, failed: bool) -> tuple[float, float, float]:
    store, cache, flag = workdir / "store", workdir / "cache", workdir / "flag"
    if not failed:
        flag.write_text("")
    started = time.perf_counter()
    try:
        fntree.run(root(n, str(flag)), jobstore=store, cache=cache, log_level="CRITICAL",
                   retry_count=0)
    except fntree.WorkflowFailed:
        assert failed
    first_run = time.perf_counter() - started
    flag.write_text("")
    watch = FirstIssue()
    started = time.perf_counter()
    value = fntree.restart(store, rerun_changed=True, observers=[watch], log_level="CRITICAL")
    ended = time.perf_counter()
    assert value == n * (n - 1) // 2 and watch.at is not None
    return watch.at - started, ended - started, first_run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=10_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--failed", action="store_true",
                        help="the first run fails at its follow-on (no compaction)")
    args = parser.parse_args()
    firsts, wholes, runs = [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            first, whole, run = once(args.n, Path(tmp), args.failed)
        firsts.append(first)
        wholes.append(whole)
        runs.append(run)
        print(f"first run {run:.3f} s; --rerun-changed: first job issued after {first:.3f} s, "
              f"re-run done after {whole:.3f} s", flush=True)
    what = "failed" if args.failed else "completed"
    print(f"--rerun-changed of a {args.n + 2}-job {what} store: first job issued after "
          f"{statistics.median(firsts):.3f} s, re-run (all leaves cached) complete after "
          f"{statistics.median(wholes):.3f} s; first run {statistics.median(runs):.3f} s "
          f"(median of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
