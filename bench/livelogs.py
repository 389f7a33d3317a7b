"""The cost of live logs at fan-out: jobs/s with live output and messages, and without.

A root with N children and a follow-on summing their values (as bench/fanout.py),
on the local batch system with a durable job store, in two workloads: children
that log nothing (`quiet`) and children that each call `context().log` once
(`logging`). Each is run with live logs (this checkout) and without:
`FNTREE_LIVE_EVERY=0` (this checkout, the live thread off) and, with
`--previous DIR`, the fntree checkout in DIR (the behaviour before live logs).
Every run is a fresh process; the variants are interleaved round by round, each
round starting with the next variant, so that a machine busy with other work slows
them alike and none always runs after the same one. Prints each variant's
median jobs/s over the rounds, and its ratio to the first variant "without".

    python bench/livelogs.py 10000 --rounds 5 --previous /path/to/older/fntree
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fntree


@fntree.target
def quiet(i: int) -> int:
    return i


@fntree.target
def logging_one_line(i: int) -> int:
    fntree.context().log(f"child {i}")
    return i


@fntree.target
def total(values: list[int], started: float) -> tuple[int, float]:
    return sum(values), started


@fntree.target
def root(n: int, talk: bool) -> fntree.Call:
    child = logging_one_line if talk else quiet
    return total([child(i) for i in range(n)], time.time())


def one_run(n: int, workload: str, jobstore: Path) -> float:
    """Jobs/s from the root's start to its value, in this process."""
    value, started = fntree.run(root(n, workload == "logging"), jobstore=jobstore)
    wall = time.time() - started
    assert value == n * (n - 1) // 2, value
    return (n + 2) / wall


def spawn(n: int, workload: str, checkout: str | None, live: bool, scratch: Path) -> float:
    """One run in a fresh process, with fntree from `checkout` (None: this one)."""
    env = dict(os.environ)
    env.pop("FNTREE_LIVE_EVERY", None)
    if not live:
        env["FNTREE_LIVE_EVERY"] = "0"
    if checkout:
        env["PYTHONPATH"] = checkout + os.pathsep + env.get("PYTHONPATH", "")
    store = Path(tempfile.mkdtemp(dir=scratch)) / "jobstore"
    out = subprocess.run([sys.executable, __file__, str(n), "--one", workload, str(store)],
                         env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=10_000, help="children (10000)")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each variant (5)")
    parser.add_argument("--previous", metavar="DIR",
                        help="an fntree checkout without live logs, run as a variant too")
    parser.add_argument("--workload", choices=("quiet", "logging"), action="append",
                        help="run only this workload (repeatable; default: both)")
    parser.add_argument("--one", nargs=2, metavar=("WORKLOAD", "JOBSTORE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(f"{one_run(args.n, args.one[0], Path(args.one[1])):.1f}")
        return 0
    variants = [("without: FNTREE_LIVE_EVERY=0", None, False)]
    if args.previous:
        variants.insert(0, (f"without: previous fntree ({args.previous})", args.previous,
                            False))
    variants.append(("with live logs", None, True))
    for workload in args.workload or ("quiet", "logging"):
        rates: dict[str, list[float]] = {name: [] for name, _, _ in variants}
        with tempfile.TemporaryDirectory(prefix="fntree-bench-") as scratch:
            for k in range(args.rounds):
                # each round starts with another variant, so none always follows the same one
                for name, checkout, live in variants[k % len(variants):] + variants[
                        :k % len(variants)]:
                    rates[name].append(spawn(args.n, workload, checkout, live, Path(scratch)))
        base = statistics.median(rates[variants[0][0]])
        print(f"fan-out N={args.n:,}, children {workload}: median jobs/s of {args.rounds} "
              "interleaved runs")
        for name, _, _ in variants:
            median = statistics.median(rates[name])
            runs = " ".join(f"{r:,.0f}" for r in rates[name])
            print(f"  {name:<48} {median:7,.0f}  ({median / base:.3f})  runs: {runs}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
