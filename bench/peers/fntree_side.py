"""fntree's side of bench/vs_peers.py: the four workloads as fntree targets.

Run with fntree's own Python (the repository's virtual environment), on the local batch
system with a durable job store in a temp dir: every completion is fsynced to the job
store's journal before anything acts on it, and a killed run resumes with `fntree restart`.
`run` is from the first job's start (the workers are up) to the value in the caller's hands;
`startup` is the rest of `fntree.run` before it: the job store's creation, the workers' start.

- fanout: a root returning `total([leaf(i) for i in range(n)])` (children, then a follow-on);
- chain: `hop(n)` returning `hop(n - 1)`, a tail call, n times;
- fib: `fib(n)` returning `add(fib(n - 1), fib(n - 2))`: each call's children made at run time;
- cpu: a root returning `add(*[spin(i) ...])`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import common

import fntree


@fntree.target
def leaf(i: int) -> int:
    return common.leaf(i)


@fntree.target
def add(*values: int) -> int:
    return common.add(*values)


@fntree.target
def total(values: list[int]) -> int:
    return sum(values)


@fntree.target
def fanout(n: int) -> fntree.Call:
    return total([leaf(i) for i in range(n)])


@fntree.target
def hop(remaining: int, done: int) -> int | fntree.Call:
    if remaining == 0:
        return done
    return hop(remaining - 1, common.step(done))


@fntree.target
def fib(n: int) -> int | fntree.Call:
    if n < 2:
        return n
    return add(fib(n - 1), fib(n - 2))


@fntree.target
def spin(i: int) -> int:
    return common.spin(i)


@fntree.target
def cpu(n: int) -> fntree.Call:
    return add(*[spin(i) for i in range(n)])


ROOTS = {"fanout": fanout, "chain": lambda n: hop(n, 0), "fib": fib, "cpu": cpu}


@fntree.target
def begin(workload: str, n: int, stamp: str) -> fntree.Call:
    """The first job: notes when it started (the workers are up), then the workload."""
    Path(stamp).write_text(repr(time.time()))
    return ROOTS[workload](n)


def main() -> int:
    args = common.parse(("local",))
    scratch = tempfile.TemporaryDirectory(prefix="vs-peers-fntree-")
    stamp = Path(scratch.name) / "started"

    def run(_: object) -> int:
        value: int = fntree.run(begin(args.workload, args.n, str(stamp)),
                                jobstore=Path(scratch.name) / "store")
        return value

    def started(_: object) -> float:
        return float(stamp.read_text())

    return common.measure(args, lambda: None, run, lambda _: scratch.cleanup(), started)


if __name__ == "__main__":
    sys.exit(main())
