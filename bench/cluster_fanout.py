"""Fan-out on a cluster batch system: a root with N trivial children and a summing follow-on.

For each N, prints the scheduler jobs submitted (sbatch or qsub calls), the status calls
the leader made (squeue + sacct, or qstat + qacct; counted at the batch systems' command
seam) and the wall time of `fntree.run`. The job store is made under `--dir` (default: a
temp dir), which must be on a filesystem the compute nodes see; ci/slurm-up.sh and
ci/sge-up.sh start single-host clusters for which any local path will do.

    python bench/cluster_fanout.py --batch-system gridengine 1000 10000
    python bench/cluster_fanout.py --batch-system slurm 10000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import fntree
from fntree.batch import slurm_commands

SUBMIT = {"slurm": ("sbatch",), "gridengine": ("qsub",)}
STATUS = {"slurm": ("squeue", "sacct"), "gridengine": ("qstat", "qacct")}


@fntree.target
def noop(i: int) -> int:
    return i


@fntree.target
def total(values: list[int]) -> int:
    return sum(values)


@fntree.target
def root(n: int) -> fntree.Call:
    return total([noop(i) for i in range(n)])


def once(n: int, system: str, max_jobs: int | None, where: Path | None
         ) -> tuple[int, int, float]:
    """(scheduler jobs, status calls, wall seconds) of one run of N children."""
    calls = slurm_commands.DEFAULT_COMMANDS.calls
    with tempfile.TemporaryDirectory(prefix="fntree-cluster-bench-", dir=where) as scratch:
        before = calls.copy()
        started = time.perf_counter()
        value = fntree.run(root(n), jobstore=Path(scratch) / "jobstore", batch_system=system,
                           max_jobs=max_jobs)
        wall = time.perf_counter() - started
    assert value == n * (n - 1) // 2, value
    made = calls - before
    return (sum(made[c] for c in SUBMIT[system]), sum(made[c] for c in STATUS[system]), wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="*", type=int, default=[1000, 10000],
                        help="children (1000 10000)")
    parser.add_argument("--batch-system", choices=sorted(SUBMIT), default="gridengine")
    parser.add_argument("--max-jobs", type=int, default=None,
                        help="scheduler jobs queued or running at once (the batch system's)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per N; medians printed")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to make the job store (a shared filesystem)")
    args = parser.parse_args()
    if not args.n or min(args.n) < 1:
        parser.error("N must be at least 1")
    system = args.batch_system
    for n in args.n:
        runs = [once(n, system, args.max_jobs, args.dir) for _ in range(args.repeat)]
        jobs, status, wall = (statistics.median(r[i] for r in runs) for i in range(3))
        print(f"{system} fanout N={n:,} ({n + 2:,} fntree jobs): {jobs:g} scheduler jobs "
              f"({'+'.join(SUBMIT[system])}), {status:g} status calls "
              f"({'+'.join(STATUS[system])}), wall {wall:.1f} s "
              f"(runs: {', '.join(f'{r[2]:.1f}' for r in runs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
