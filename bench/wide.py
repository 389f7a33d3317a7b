"""Wide: 100 children, each with 1000 children of its own, and follow-ons summing.

100,202 jobs in all (the root, 100 middles, 100,000 leaves, 100 + 1 follow-ons).
Prints the wall time from the root's start to its value, jobs/s, the leader's
peak RSS (the leader runs in this process), and the size in bytes and the
number of files of the job store after the run (kept in a temp dir, then removed).

    python bench/wide.py --width 100 --leaves 1000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import fntree


@fntree.target
def leaf(i: int) -> int:
    return 1


@fntree.target
def add(values: list[int]) -> int:
    return sum(values)


@fntree.target
def middle(leaves: int) -> fntree.Call:
    return add([leaf(i) for i in range(leaves)])


@fntree.target
def total(values: list[int], started: float) -> tuple[int, float]:
    return sum(values), started


@fntree.target
def root(width: int, leaves: int) -> fntree.Call:
    return total([middle(leaves) for _ in range(width)], time.time())


def disk_usage(path: Path) -> tuple[int, int]:
    """Bytes and files under `path`."""
    size = files = 0
    for folder, _, names in os.walk(path):
        for name in names:
            size += os.lstat(os.path.join(folder, name)).st_size
            files += 1
    return size, files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=100, help="children of the root (100)")
    parser.add_argument("--leaves", type=int, default=1000, help="children of each (1000)")
    args = parser.parse_args()
    jobs = 1 + args.width * (args.leaves + 2) + 1
    with tempfile.TemporaryDirectory(prefix="fntree-bench-") as scratch:
        jobstore = Path(scratch) / "jobstore"
        called = time.time()
        value, started = fntree.run(root(args.width, args.leaves), jobstore=jobstore)
        now = time.time()
        size, files = disk_usage(jobstore)
    assert value == args.width * args.leaves, value
    wall = now - started
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"wide {args.width} x {args.leaves} ({jobs:,} jobs)")
    print(f"fntree: {wall:.2f} s root start to value, {jobs / wall:,.0f} jobs/s, "
          f"leader peak RSS {rss_mib:,.0f} MiB ({now - called:.2f} s for all of fntree.run)")
    print(f"job store after the run: {size:,} bytes in {files} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
