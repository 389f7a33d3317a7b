"""Shapes: the deepest workflows, run to their exact value; prints the time of each.

- nest: children-only nesting N deep (default 100,000): each job spawns one child;
  the value is a leaf inside N one-item lists;
- promises: a static promise chain `inc(inc(...inc(0)...))` of N calls (10,000);
- tail: N tail calls (1,000,000), each job returning the next as its follow-on.

Each runs through `fntree.run` on the local batch system with a durable job store
in a temp dir, and its value is checked without recursion.

    python bench/shapes.py                      # all three at full size
    python bench/shapes.py tail --n 100000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import fntree

SIZES = {"nest": 100_000, "promises": 10_000, "tail": 1_000_000}


@fntree.target
def nest(n: int) -> Any:
    if n == 0:
        return "leaf"
    return fntree.children(nest(n - 1))


@fntree.target
def inc(x: int) -> int:
    return x + 1


@fntree.target
def hop(n: int, count: int) -> Any:
    if n == 0:
        return count
    return hop(n - 1, count + 1)


def _depth(value: Any) -> tuple[int, Any]:
    depth = 0
    while isinstance(value, list) and len(value) == 1:
        value, depth = value[0], depth + 1
    return depth, value


def run_shape(shape: str, n: int, jobstore: Path) -> float:
    """Seconds for `fntree.run` of `shape` at size `n`; AssertionError on a wrong value."""
    started = time.perf_counter()
    if shape == "nest":
        assert _depth(fntree.run(nest(n), jobstore=jobstore)) == (n, "leaf")
    elif shape == "promises":
        call = inc(0)
        for _ in range(n - 1):
            call = inc(call)
        assert fntree.run(call, jobstore=jobstore) == n
    else:
        assert fntree.run(hop(n, 0), jobstore=jobstore) == n
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shapes", nargs="*", help=f"of {', '.join(SIZES)} (default: all)")
    parser.add_argument("--n", type=int, default=None, help="size instead of the full one")
    args = parser.parse_args()
    if args.n is not None and args.n < 1:
        parser.error("--n must be at least 1")
    unknown = set(args.shapes) - set(SIZES)
    if unknown:
        parser.error(f"unknown shape {sorted(unknown)[0]!r}; choose from {', '.join(SIZES)}")
    with tempfile.TemporaryDirectory(prefix="fntree-bench-") as scratch:
        for shape in args.shapes or list(SIZES):
            n = args.n or SIZES[shape]
            seconds = run_shape(shape, n, Path(scratch) / shape)
            print(f"{shape} N={n:,}: {seconds:.1f} s, {n / seconds:,.0f} jobs/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
