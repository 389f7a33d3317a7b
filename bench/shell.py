"""Per-job overhead of a shell target: a fan-out of N `true` commands against N plain targets.

Four fan-outs of N leaves under one root, each on a fresh durable job store, on the
local batch system: plain targets returning None (the baseline), shell targets
returning the argv `["true"]` (a fork and exec per job), shell targets returning the
string `"true"` (bash -euo pipefail -c, then its builtin), and the same string target
declaring an output that the command writes (`: > {out}`, then the rename into place
with its fsyncs). Prints the median wall time of `fntree.run` over `--repeat` runs of
each, and the per-job overhead of each shell variant over the baseline, in ms. The
command's own cost is included: that is what a user pays.

    python bench/shell.py 1000 --repeat 3
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
def plain(i: int) -> None:
    return None


@fntree.shell
def argv_true(i: int) -> list[str]:
    return ["true"]


@fntree.shell
def bash_true(i: int) -> str:
    return "true"


@fntree.shell(outputs=["out"])
def bash_output(i: int, out: str) -> str:
    return fntree.sh(": > {out}", out=out)


@fntree.target
def fan(kind: str, n: int, directory: str) -> fntree.Spawn:
    if kind == "output":
        return fntree.children(bash_output(i, f"{directory}/{i}") for i in range(n))
    leaf = {"plain": plain, "argv": argv_true, "bash": bash_true}[kind]
    return fntree.children(leaf(i) for i in range(n))


KINDS = ("plain", "argv", "bash", "output")


def once(kind: str, n: int) -> float:
    with tempfile.TemporaryDirectory(prefix="fntree-bench-shell-") as scratch:
        outputs = Path(scratch) / "outputs"
        outputs.mkdir()
        started = time.perf_counter()
        fntree.run(fan(kind, n, str(outputs)), jobstore=Path(scratch) / "store")
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=1000, help="leaves (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default 3)")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(args.repeat):  # interleaved, so a change in the machine's load hits all
        for kind in KINDS:
            times[kind].append(once(kind, args.n))
    base = statistics.median(times["plain"])
    print(f"fan-out of {args.n:,} leaves, median of {args.repeat} runs each")
    for kind in KINDS:
        median = statistics.median(times[kind])
        extra = "" if kind == "plain" else \
            f"   +{(median - base) / args.n * 1000:.2f} ms/job over plain"
        print(f"  {kind:7} {median:7.2f} s  ({args.n / median:7.0f} jobs/s){extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
