"""Chain: N follow-ons one after another, each job returning the next as a tail call.

Prints hops/s from the first hop's start to the run's value (the median of
`--repeat K` runs), through a durable job store in a temp dir.

    python bench/chain.py 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import fntree


@fntree.target
def hop(remaining: int, started: float) -> float | fntree.Call:
    if remaining == 0:
        return started
    return hop(remaining - 1, started)


@fntree.target
def start(n: int) -> fntree.Call:
    return hop(n, time.time())


def run_chain(n: int, jobstore: Path) -> tuple[float, float]:
    """Seconds from the first hop's start to the value, and for all of `fntree.run`."""
    called = time.time()
    started = fntree.run(start(n), jobstore=jobstore)
    now = time.time()
    return now - started, now - called


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=2000, help="follow-ons (2000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; the median is printed")
    args = parser.parse_args()
    if args.n < 1 or args.repeat < 1:
        parser.error("N and --repeat must be at least 1")
    with tempfile.TemporaryDirectory(prefix="fntree-bench-") as scratch:
        runs = [run_chain(args.n, Path(scratch) / f"jobstore-{k}") for k in range(args.repeat)]
    wall = statistics.median(w for w, _ in runs)
    whole = statistics.median(t for _, t in runs)
    print(f"chain N={args.n:,} follow-ons, median of {args.repeat}")
    print(f"fntree: {wall:.2f} s, {args.n / wall:,.0f} hops/s "
          f"({whole:.2f} s for all of fntree.run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
