"""The extended chaos run, outside pytest, with a tally at the end.

    python -m tests.chaos --leader-kills 1000 --worker-kills 1000 \\
        [--worker-stops K] [--leader-stops L] [--disk-fills D] [--lanes J] [--seed S]
    python -m tests.chaos --long-tree [--long-kills N] [--long-width W] [--long-leaves L]

Run from the repository's root after `pip install -e '.[test]'`. It runs the
campaigns of the pytest suite (tests/chaos/harness.py, tests/chaos/disk.py), each
landing exactly what it is asked for: leader SIGKILLs at random instants; SIGKILLs
of a run's processes from outside with SIGSTOP/SIGCONT of its workers and of its
leader; and a store on a small tmpfs that fills and frees at random (root only:
elsewhere it says so and skips that part). The leader kills and the worker kills
are each split over J lanes (default 2) and every lane runs its own trees at the
same time as the others, so a 2-core machine is kept busy while one leader boots
or waits to be killed. It prints each lane's tally as it ends, then the total
and the wall time. Exit status 0 when every tree was exact and every check sound,
1 otherwise (the stores are kept and named).

`--long-tree` runs, alone, the long-tree lane (tests/chaos/long.py): one tree of
W x L leaves (default 200 x 1000: 200,402 jobs) with values across the inline
limit, its leader SIGKILLed at its own value writes as it creates the store, then
N times (default 30) at the steps of compactions while running, at a worker's
value writes and at random instants; it prints its kills by kind.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from disk import can_mount, disk_campaign  # noqa: E402
from harness import Tally, leader_lanes, run_lanes, total  # noqa: E402
from long import long_tree_campaign  # noqa: E402
from workers import worker_lanes  # noqa: E402


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--leader-kills", type=int, default=30, metavar="N",
                        help="leader SIGKILLs at random instants (default 30)")
    parser.add_argument("--worker-kills", type=int, default=30, metavar="M",
                        help="SIGKILLs of a run's processes from outside (default 30)")
    parser.add_argument("--worker-stops", type=int, default=None, metavar="K",
                        help="SIGSTOP/SIGCONTs of workers (default M/10, at least 5)")
    parser.add_argument("--leader-stops", type=int, default=None, metavar="L",
                        help="SIGSTOP/SIGCONT pauses of the leader (default M/20, at least 3)")
    parser.add_argument("--disk-fills", type=int, default=None, metavar="D",
                        help="fills of the store's disk (default (N+M)/20, at least 5)")
    parser.add_argument("--lanes", type=int, default=2, metavar="J",
                        help="lanes each for the leader and the worker kills (default 2)")
    parser.add_argument("--seed", type=int, default=None, metavar="S",
                        help="seed of the campaigns (default: the pytest suite's seeds)")
    parser.add_argument("--long-tree", action="store_true",
                        help="run the long-tree lane alone (tests/chaos/long.py)")
    parser.add_argument("--long-kills", type=int, default=30, metavar="N",
                        help="leader SIGKILLs in the long tree after its creation's (default 30)")
    parser.add_argument("--long-width", type=int, default=200, metavar="W",
                        help="the long tree's branches (default 200)")
    parser.add_argument("--long-leaves", type=int, default=1000, metavar="L",
                        help="leaves of each branch (default 1000)")
    args = parser.parse_args(argv)
    if args.worker_stops is None:
        args.worker_stops = max(5, args.worker_kills // 10)
    if args.leader_stops is None:
        args.leader_stops = max(3, args.worker_kills // 20)
    if args.disk_fills is None:
        args.disk_fills = max(5, (args.leader_kills + args.worker_kills) // 20)
    if args.lanes < 1:
        parser.error("--lanes must be at least 1")
    return args


def report(tally: Tally, seconds: float) -> str:
    return (f"{tally.leader_kills} leader kills, {tally.worker_kills} worker kills from "
            f"outside, {tally.worker_stops} worker stops ({tally.worker_continues} continued "
            f"alive), {tally.leader_stops} leader stops, {tally.disk_fills} disk fills "
            f"({tally.disk_exits} leader stops and {tally.disk_refusals} failed job attempts on "
            f"a full disk); {tally.trees} trees, "
            f"{tally.jobs} jobs, {tally.restarts} restarts, {tally.checks} check runs; "
            f"wall time {seconds:.0f} s (lanes' time in leader runs cut by a kill "
            f"{tally.seconds_cut:.0f} s, in runs to their end {tally.seconds_run:.0f} s, in "
            f"waits for processes to go and checks {tally.seconds_checking:.0f} s)")


LONG: Counter[str] = Counter()  # the long-tree lane's kills by kind


def lanes(args: argparse.Namespace, workdir: Path) -> dict[str, Callable[..., object]]:
    """The lanes to run at once, by name: each a campaign counting into the Tally it is given."""
    if args.long_tree:
        return {"long tree": functools.partial(
            long_tree_campaign, workdir / "long", args.long_kills, args.long_width,
            args.long_leaves, seed=1992 if args.seed is None else args.seed, counts=LONG)}
    runs = {**leader_lanes(workdir, args.leader_kills, args.lanes, args.seed),
            **worker_lanes(workdir, args.worker_kills, args.worker_stops, args.leader_stops,
                           args.lanes, args.seed)}
    if args.disk_fills:
        why = can_mount()
        if why:
            print(f"chaos: the disk-full part is skipped: {why}", flush=True)
        else:
            runs["disk fills"] = functools.partial(
                disk_campaign, workdir / "disk", args.disk_fills,
                seed=1968 if args.seed is None else args.seed + 25)
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    start = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="fntree-chaos-"))

    def ended(name: str, tally: Tally) -> None:
        print(f"chaos: {name}: {report(tally, time.monotonic() - start)}", flush=True)
        if name == "long tree":
            print(f"chaos: long tree: {', '.join(f'{n} {k}' for k, n in LONG.items())}",
                  flush=True)

    tallies, failures = run_lanes(lanes(args, workdir), ended)
    aimed = sum(t.leader_kills for name, t in tallies.items() if name.startswith("leader"))
    line = (f"chaos: {report(total(tallies), time.monotonic() - start)} ({aimed} of the "
            f"leader kills at random instants in the leader-kill lanes, the others among the "
            f"worker kills and disk fills)")
    if failures:
        print("\n".join(f"chaos: FAILED: {f}" for f in failures), file=sys.stderr)
        print(f"{line}; the stores are kept in {workdir}", file=sys.stderr)
        return 1
    print(f"{line}; every tree exact, no work lost or done twice")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
