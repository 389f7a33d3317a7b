"""The cache across runs: what a hit costs per job, and what hashing a call costs.

A root (not pure) spawns N leaves declared `cache=True` and a follow-on summing
their values. Three runs, each in a fresh job store: without a cache, with an
empty cache (every leaf runs and writes its entry: fsync and rename), and with
that cache full (every leaf is a hit: its key computed, its entry read and
checked, its body not run). Printed: each run's wall time (`fntree.run`, whole),
the per-job difference against the run without a cache, and the mean time
workers spent on a hit (the `wall` of the cached `done` events). Then, in this
process, the cost of hashing: a target's code hash, and a call's key for small
arguments and for a Path to a 1 MB file.

    python bench/cache.py 1000 --repeat 3
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import fntree
from fntree.identity import code_hash
from fntree.runtime.cache import job_key
from fntree.runtime.eventlog import read_events
from fntree.runtime.paths import StorePaths


@fntree.target(cache=True)
def leaf(i: int) -> int:
    return i


@fntree.target
def total(values: list[int]) -> int:
    return sum(values)


@fntree.target
def root(n: int) -> fntree.Call:
    return total([leaf(i) for i in range(n)])


def run_once(n: int, store: Path, cache: Path | None) -> tuple[float, list[float]]:
    """Seconds for `fntree.run`, and the worker-side wall of each cached job."""
    started = time.perf_counter()
    value = fntree.run(root(n), jobstore=store, cache=cache)
    wall = time.perf_counter() - started
    assert value == n * (n - 1) // 2, value
    hits = [float(e["wall"]) for e in read_events(StorePaths(store))
            if e.get("ev") == "done" and e.get("cached")]
    return wall, hits


def per_call(fn: object, repeat: int) -> float:
    """Microseconds per call of `fn()`."""
    started = time.perf_counter()
    for _ in range(repeat):
        fn()  # type: ignore[operator]
    return (time.perf_counter() - started) / repeat * 1e6


def hashing(scratch: Path) -> None:
    args = pickle.dumps(((12345,), {}))
    big = scratch / "one-megabyte"
    big.write_bytes(bytes(range(256)) * 4096)
    path_args = ((big,), {})
    path_bytes = pickle.dumps(path_args)
    print(f"code hash of a target: {per_call(lambda: code_hash(root), 2000):.1f} µs "
          "(once per target and worker process)")
    print(f"key of a call with small arguments: "
          f"{per_call(lambda: job_key(b'c' * 16, args, (), ((12345,), {})), 20000):.1f} µs")
    print(f"key of a call with a Path to a 1 MB file: "
          f"{per_call(lambda: job_key(b'c' * 16, path_bytes, (), path_args), 200):.0f} µs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=1000, help="cached leaves (1000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; medians are printed")
    args = parser.parse_args()
    if args.n < 1 or args.repeat < 1:
        parser.error("N and --repeat must be at least 1")
    plain, cold, warm, hits = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="fntree-bench-") as name:
        scratch = Path(name)
        for k in range(args.repeat):
            cache = scratch / f"cache-{k}"
            plain.append(run_once(args.n, scratch / f"plain-{k}", None)[0])
            cold.append(run_once(args.n, scratch / f"cold-{k}", cache)[0])
            wall, found = run_once(args.n, scratch / f"warm-{k}", cache)
            assert len(found) == args.n, f"{len(found)} hits, not {args.n}"
            warm.append(wall)
            hits.extend(found)
        hashing(scratch)
    jobs = args.n + 2
    p, c, w = (statistics.median(x) for x in (plain, cold, warm))
    print(f"cache N={args.n:,} pure leaves ({jobs:,} jobs), median of {args.repeat}")
    print(f"no cache:    {p:.2f} s")
    print(f"empty cache: {c:.2f} s ({(c - p) / args.n * 1e3:+.2f} ms per leaf: run, then "
          "write the entry)")
    print(f"full cache:  {w:.2f} s ({(w - p) / args.n * 1e3:+.2f} ms per leaf against no cache)")
    print(f"a hit in the worker (key, read, check): {statistics.median(hits) * 1e6:.0f} µs "
          f"median, {statistics.mean(hits) * 1e6:.0f} µs mean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
