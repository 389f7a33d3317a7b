"""The extended chaos run, outside pytest, with a tally at the end.

    python -m tests.chaos --leader-kills 1000 --worker-kills 1000 \\
        [--worker-stops K] [--leader-stops L] [--seed S]

Run from the repository's root after `pip install -e '.[test]'`. It runs the same
campaigns as `test_leader_killed_at_random_instants` and
`test_workers_killed_and_stopped_from_outside` (tests/chaos/harness.py), each
landing exactly the kills it is asked for, and prints the tally and the wall time.
Exit status 0 when every tree was exact and every check sound, 1 otherwise (the
stores of the failed tree are kept and named).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from harness import Tally, leader_kill_campaign, worker_campaign  # noqa: E402


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--leader-kills", type=int, default=30, metavar="N",
                        help="leader SIGKILLs at random instants (default 30)")
    parser.add_argument("--worker-kills", type=int, default=30, metavar="M",
                        help="SIGKILLs of a run's processes from outside (default 30)")
    parser.add_argument("--worker-stops", type=int, default=5, metavar="K",
                        help="SIGSTOPs of workers (default 5)")
    parser.add_argument("--leader-stops", type=int, default=3, metavar="L",
                        help="SIGSTOP/SIGCONT pauses of the leader (default 3)")
    parser.add_argument("--seed", type=int, default=None, metavar="S",
                        help="seed of both campaigns (default: the pytest suite's seeds)")
    return parser.parse_args(argv)


def report(leader: Tally, workers: Tally, seconds: float) -> str:
    total = Tally()
    total.add(leader)
    total.add(workers)
    return (f"chaos: {total.leader_kills} leader kills ({leader.leader_kills} at random "
            f"instants, {workers.leader_kills} among the worker kills), "
            f"{total.worker_kills} worker kills from outside, {total.worker_stops} worker "
            f"stops, {total.leader_stops} leader stops; {total.trees} trees, {total.jobs} jobs, "
            f"{total.restarts} restarts, {total.checks} check runs; wall time {seconds:.0f} s")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    start = time.monotonic()
    leader, workers = Tally(), Tally()
    workdir = Path(tempfile.mkdtemp(prefix="fntree-chaos-"))
    seeds = {} if args.seed is None else {"seed": args.seed}
    try:
        leader_kill_campaign(workdir / "leader", args.leader_kills, tally=leader, **seeds)
        print(report(leader, workers, time.monotonic() - start), flush=True)
        worker_campaign(workdir / "workers", args.worker_kills, args.worker_stops,
                        args.leader_stops, tally=workers, **seeds)
    except AssertionError as error:
        print(f"chaos: FAILED: {error}; the stores are kept in {workdir}", file=sys.stderr)
        print(report(leader, workers, time.monotonic() - start), file=sys.stderr)
        return 1
    print(report(leader, workers, time.monotonic() - start) + "; no work lost or done twice")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
