"""fntree side by side with Toil: the same fan-out and the same merge sort, one invocation.

1. Fan-out: a root with N children returning their index and a follow-on summing
   them (Toil: `addChildJobFn` + `addFollowOnJobFn` with promises; fntree:
   promises).
2. Merge sort: examples/sort's algorithm (split a file at line boundaries into
   byte ranges, sort the leaves, merge in follow-ons through files) with the same
   helper functions, written once as Toil job functions and once as fntree targets.

Both run on this machine with their default single-machine batch system and a
file job store in a temp dir; times are from the call to the value, median of
--repeat runs. Toil is an optional benchmark dependency, never a runtime one:

    python3 -m venv /opt/toil-venv && /opt/toil-venv/bin/pip install toil -e .
    /opt/toil-venv/bin/python bench/vs_toil.py --n 1000 --size 100M
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fntree
from examples.sort import sort as example

try:
    from toil.common import Toil
    from toil.job import Job
except ImportError:  # pragma: no cover - reported in main()
    Toil = Job = None


# -- Toil's side -------------------------------------------------------------------------
def toil_leaf(job: Any, i: int) -> int:
    return i


def toil_total(job: Any, values: list[int]) -> int:
    return sum(values)


def toil_fan(job: Any, n: int) -> Any:
    values = [job.addChildJobFn(toil_leaf, i, memory="100M", cores=1, disk="1M").rv()
              for i in range(n)]
    return job.addFollowOnJobFn(toil_total, values, memory="100M", cores=1, disk="1M").rv()


def toil_down(job: Any, path: str, start: int, end: int, max_bytes: int, output: str,
              scratch: str) -> None:
    middle = example.split_point(path, start, end, max_bytes)
    if middle is None:
        example.sort_range(path, start, end, output)
        return
    first, second = f"{scratch}/{start}-{middle}", f"{scratch}/{middle}-{end}"
    resources = {"memory": "500M", "cores": 1, "disk": "1M"}
    job.addChildJobFn(toil_down, path, start, middle, max_bytes, first, scratch, **resources)
    job.addChildJobFn(toil_down, path, middle, end, max_bytes, second, scratch, **resources)
    job.addFollowOnJobFn(toil_up, first, second, output, **resources)


def toil_up(job: Any, first: str, second: str, output: str) -> None:
    example.merge_files(first, second, output)


def run_toil(root: Any, workdir: Path) -> Any:
    # Toil starts its workers as `_toil_worker` from PATH: the virtual environment's.
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ["PATH"].split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ["PATH"]
    options = Job.Runner.getDefaultOptions(str(workdir / "toil-jobstore"))
    options.logLevel = "CRITICAL"
    options.clean = "always"
    with Toil(options) as toil:
        return toil.start(root)


# -- fntree's side ---------------------------------------------------------------------------
@fntree.target
def leaf(i: int) -> int:
    return i


@fntree.target
def total(values: list[int]) -> int:
    return sum(values)


@fntree.target
def fan(n: int) -> fntree.Call:
    return total([leaf(i) for i in range(n)])


# -- the comparison ------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def compare(name: str, repeat: int, toil_fn: Callable[[Path], Any],
            fntree_fn: Callable[[Path], Any], check: Callable[[Any], bool]) -> None:
    times: dict[str, list[float]] = {"toil": [], "fntree": []}
    for _ in range(repeat):
        for engine, fn in (("toil", toil_fn), ("fntree", fntree_fn)):
            with tempfile.TemporaryDirectory() as tmp:
                seconds, value = timed(lambda fn=fn, tmp=tmp: fn(Path(tmp)))
                assert check(value), f"{engine} gave a wrong {name} result"
            times[engine].append(seconds)
            print(f"  {name:<8} {engine:<6} {seconds:8.2f} s", flush=True)
    toil_s, fntree_s = statistics.median(times["toil"]), statistics.median(times["fntree"])
    print(f"{name}: Toil {toil_s:.2f} s, fntree {fntree_s:.2f} s, fntree is "
          f"{toil_s / fntree_s:.0f}x faster (median of {repeat})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="children in the fan-out")
    parser.add_argument("--size", default="100M", help="bytes of input to sort")
    parser.add_argument("--leaves", type=int, default=128, help="about how many sorted ranges")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--skip-sort", action="store_true")
    args = parser.parse_args()
    if Toil is None:
        print("Toil is not installed here; install it beside fntree in a virtual environment:\n"
              "  python3 -m venv /opt/toil-venv && /opt/toil-venv/bin/pip install toil -e .")
        return 2
    n = args.n
    compare(f"fan-out {n}", args.repeat,
            lambda d: run_toil(Job.wrapJobFn(toil_fan, n, memory="100M", cores=1, disk="1M"), d),
            lambda d: fntree.run(fan(n), jobstore=d / "fntree-jobstore"),
            lambda value: value == n * (n - 1) // 2)
    if args.skip_sort:
        return 0
    size = example.parse_size(args.size)
    max_bytes = max(1, size // args.leaves)
    with tempfile.TemporaryDirectory() as data:
        source = example.generate(Path(data) / "input.txt", size, seed=1)
        expected = b"".join(sorted(source.read_bytes().splitlines(keepends=True)))

        def sort_with_toil(workdir: Path) -> bytes:
            output = workdir / "sorted.txt"
            scratch = workdir / "scratch"
            scratch.mkdir()
            root = Job.wrapJobFn(toil_down, str(source), 0, size, max_bytes, str(output),
                                 str(scratch), memory="500M", cores=1, disk="1M")
            run_toil(root, workdir)
            return output.read_bytes()

        def sort_with_fntree(workdir: Path) -> bytes:
            output = workdir / "sorted.txt"
            fntree.run(example.setup(str(source), str(output), max_bytes),
                       jobstore=workdir / "fntree-jobstore")
            return output.read_bytes()

        compare(f"sort {args.size}", args.repeat, sort_with_toil, sort_with_fntree,
                lambda value: value == expected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
