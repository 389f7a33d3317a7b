"""Lock probes: how often a would-be leader is refused while readers probe the lock.

Builds a small completed job store, starts K processes that probe its leader's
lock in a tight loop (`JobStore.leader_alive`, what `fntree status` does), and
takes and releases the lock N times, with no patience (the old behaviour: refuse
at the first conflict) and with the default patience. Prints the refusals of
each, and the median time to take the lock with patience.

    python bench/lock_probes.py --takes 200 --probers 2
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fntree
from fntree.errors import LeaderRunningError
from fntree.runtime.store import LOCK_PATIENCE, JobStore

PROBER = """
import pathlib, sys
from fntree.runtime.store import JobStore
store, stop = JobStore.open(sys.argv[1]), pathlib.Path(sys.argv[2])
while not stop.exists():
    for _ in range(100):
        store.leader_alive()
"""


@fntree.target
def one() -> int:
    return 1


def takes(store: JobStore, n: int, patience: float) -> tuple[int, list[float]]:
    refused, times = 0, []
    for _ in range(n):
        started = time.perf_counter()
        try:
            store.lock(patience=patience)
        except LeaderRunningError:
            refused += 1
            continue
        times.append(time.perf_counter() - started)
        store.unlock()
        time.sleep(0.005)
    return refused, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--takes", type=int, default=200)
    parser.add_argument("--probers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        path, stop = Path(workdir) / "store", Path(workdir) / "stop"
        fntree.run(one(), jobstore=path, log_level="CRITICAL")
        store = JobStore.open(path)
        probers = [subprocess.Popen([sys.executable, "-c", PROBER, str(path), str(stop)])
                   for _ in range(args.probers)]
        try:
            time.sleep(1)  # the probers are looping
            old, _ = takes(store, args.takes, 0.0)
            new, times = takes(store, args.takes, LOCK_PATIENCE)
        finally:
            stop.write_text("")
            for prober in probers:
                prober.wait()
    print(f"{args.probers} probers, {args.takes} takes of the lock each way")
    print(f"refused with no patience:            {old}")
    print(f"refused with {LOCK_PATIENCE:g} s of patience:        {new}")
    if times:
        print(f"median time to take it (patience):  {1000 * statistics.median(times):.2f} ms; "
              f"longest {1000 * max(times):.1f} ms")


if __name__ == "__main__":
    main()
