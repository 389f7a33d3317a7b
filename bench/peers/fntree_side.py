"""fntree's side of bench/vs_peers.py: the four workloads as fntree targets.

Run with fntree's own Python (the repository's virtual environment), on the local batch
system with a durable job store in a temp dir: every completion is fsynced to the job
store's journal before anything acts on it, and a killed run resumes with `fntree restart`.
`run` is all of `fntree.run` (the job store's creation and the workers' start-up included).

- fanout: a root returning `total([leaf(i) for i in range(n)])` (children, then a follow-on);
- chain: `hop(n)` returning `hop(n - 1)`, a tail call, n times;
- fib: `fib(n)` returning `add(fib(n - 1), fib(n - 2))`: each call's children made at run time;
- cpu: a root returning `add(*[spin(i) ...])`.
"""

from __future__ import annotations

import sys
import tempfile
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


def main() -> int:
    args = common.parse(("local",))
    scratch = tempfile.TemporaryDirectory(prefix="vs-peers-fntree-")

    def run(_: object) -> int:
        return fntree.run(ROOTS[args.workload](args.n), jobstore=Path(scratch.name) / "store")

    return common.measure(args, lambda: None, run, lambda _: scratch.cleanup())


if __name__ == "__main__":
    sys.exit(main())
