"""Fan-out on Slurm: a root with N trivial children and a summing follow-on, as Slurm jobs.

Prints N, the Slurm jobs submitted (sbatch calls), the squeue and sacct calls the
leader made (counted at the batch system's command seam), and the wall time of
`fntree.run`. The job store is made under `--dir` (default: a temp dir), which
must be on a filesystem the compute nodes see; ci/slurm-up.sh starts a
single-node Slurm for which any local path will do.

    python bench/slurm_fanout.py 1000
    python bench/slurm_fanout.py 10000 --max-jobs 100
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import fntree
from fntree.batch import slurm, slurm_commands


@fntree.target
def noop(i: int) -> int:
    return i


@fntree.target
def total(values: list[int]) -> int:
    return sum(values)


@fntree.target
def root(n: int) -> fntree.Call:
    return total([noop(i) for i in range(n)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=1000, help="children (1000)")
    parser.add_argument("--max-jobs", type=int, default=None,
                        help=f"Slurm jobs queued or running at once ({slurm.MAX_JOBS})")
    parser.add_argument("--partition", default=None, help="Slurm partition (the default one)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to make the job store (a shared filesystem)")
    args = parser.parse_args()
    if args.n < 1:
        parser.error("N must be at least 1")
    calls = slurm_commands.DEFAULT_COMMANDS.calls
    with tempfile.TemporaryDirectory(prefix="fntree-slurm-bench-", dir=args.dir) as scratch:
        before = calls.copy()
        started = time.perf_counter()
        value = fntree.run(root(args.n), jobstore=Path(scratch) / "jobstore",
                           batch_system="slurm", max_jobs=args.max_jobs,
                           slurm_partition=args.partition)
        wall = time.perf_counter() - started
    assert value == args.n * (args.n - 1) // 2, value
    made = calls - before
    jobs = args.n + 2  # the root, its children and its follow-on
    print(f"slurm fanout N={args.n:,} ({jobs:,} fntree jobs)")
    print(f"Slurm jobs submitted: {made['sbatch']:,} ({jobs / max(made['sbatch'], 1):,.0f} "
          "fntree jobs per Slurm job)")
    print(f"status queries: {made['squeue']} squeue, {made['sacct']} sacct "
          f"(and {made['sinfo']} sinfo, {made['scancel']} scancel)")
    print(f"wall time: {wall:.1f} s ({jobs / wall:,.0f} jobs/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
