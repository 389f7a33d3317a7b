"""Code identity: what hashing and re-pickling targets once per run costs.

Prints, as the median of `--repeat` rounds:

- the code hash of one target per run (a fresh per-run memo each time): a target
  reading a constant, a helper function, a module and another target;
- `Target.pickled()` once per run, for a target saved by value (a script's) and
  by reference (an importable module's);
- per call, inside a run (memo warm): lowering N calls of one target to job
  specs, the work a body returning N children does, and of it the identity
  bookkeeping (`pickled()` memo check, key remembered).

    python bench/identity.py --repeat 5
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import fntree
from fntree import identity
from fntree.compiler import lower

LIMIT = 3
TABLE = {"a": 1, "b": 2}


def helper(x: int) -> int:
    return x * LIMIT + TABLE["a"]


@fntree.target
def leaf(x: int) -> int:
    return helper(x) + math.floor(x)


@fntree.target
def node(n: int) -> fntree.Spawn:
    return fntree.children(*[leaf(i) for i in range(n)])


def per_run(fn: object, rounds: int) -> float:
    """Microseconds of `fn()` with a new run's memo each time."""
    start = time.perf_counter()
    for _ in range(rounds):
        identity.new_run()
        fn()  # type: ignore[operator]
    return (time.perf_counter() - start) / rounds * 1e6


def per_call(n: int) -> tuple[float, float]:
    """Microseconds per call: lowering `n` calls; of it, `pickled()` with the memo warm."""
    identity.new_run()
    calls = [leaf(i) for i in range(n)]
    start = time.perf_counter()
    lower(7, fntree.children(*calls))
    lowering = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for call in calls:
        call.target.pickled()
    return lowering, (time.perf_counter() - start) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10_000)
    args = parser.parse_args()
    rows: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        rows.setdefault("code hash, one target per run", []).append(
            per_run(lambda: identity.code_hash(node), 200))
        rows.setdefault("pickled() by value, per run", []).append(
            per_run(node.pickled, 200))
        rows.setdefault("pickled() by reference, per run", []).append(
            per_run(fntree.compiler.build_value.pickled, 200))
        lowering, check = per_call(args.calls)
        rows.setdefault(f"lowering {args.calls} calls, per call", []).append(lowering)
        rows.setdefault("pickled() memo hit, per call", []).append(check)
    for name, values in rows.items():
        print(f"{name:40s} {statistics.median(values):8.2f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
