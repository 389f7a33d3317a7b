"""Recovery: how long opening a job store takes after its leader died writing a large frame.

For each size, a real run whose root spawns children with arguments of that many
MiB in all (each just under the 64 KiB above which values are stored out of
line, so all of them are in the one journal frame that records the spawn) has
its leader SIGKILLed while it writes that frame
(`FNTREE_CRASH_AT=journal.torn:K`: half of the frame written, then SIGKILL; K
is raised until the torn frame is the spawn's), which leaves a torn tail of
about half the frame. It then times, `--repeat` times, recovery in this process
(`JobStore.open(DIR).recover(repair=False)`, what `fntree status` does) and
`fntree check DIR` as a command (with Python's start-up, also timed alone as
`fntree --help`), and prints the medians.

    python bench/recovery.py --sizes 1 16 64 256 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fntree
from fntree.runtime.store import JobStore

HERE = Path(__file__).resolve().parent


CHUNK = 60 << 10  # under the threshold of values stored out of line (fntree/runtime/objects.py)


@fntree.target
def piece(data: bytes) -> int:
    return len(data)


@fntree.target
def count(sizes: list[int]) -> int:
    return sum(sizes)


@fntree.target
def big(mib: int) -> fntree.Call:
    """Children whose arguments total `mib` MiB: one journal frame of that size."""
    return count([piece(os.urandom(CHUNK)) for _ in range(-(-(mib << 20) // CHUNK))])


def torn_store(where: Path, mib: int) -> tuple[Path, int]:
    """A store whose leader died half-way through recording `big(mib)`'s spawn; its torn bytes."""
    for k in range(2, 12):
        store = where / f"store-{mib}-{k}"
        code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import fntree, recovery; "
                f"fntree.run(recovery.big({mib}), jobstore={str(store)!r})")
        env = {**os.environ, "FNTREE_CRASH_AT": f"journal.torn:{k}"}
        done = subprocess.run([sys.executable, "-c", code], env=env, timeout=600, check=False,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if done.returncode == 0:
            break
        torn = JobStore.open(store).replay(repair=False).torn
        if torn >= (mib << 20) // 2:
            return store, torn
        shutil.rmtree(store)
    raise SystemExit(f"no crash landed in the {mib} MiB frame")


def timed(action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    startup = statistics.median(timed(lambda: subprocess.run(
        [sys.executable, "-m", "fntree", "--help"], check=True, stdout=subprocess.DEVNULL))
        for _ in range(args.repeat))
    print(f"`fntree --help` (Python's and fntree's start-up alone): {startup:.3f} s")
    print(f"{'frame':>8} {'torn tail':>11} {'recover (ms)':>13} {'fntree check (s)':>17}")
    with tempfile.TemporaryDirectory() as tmp:
        for mib in args.sizes:
            store, torn = torn_store(Path(tmp), mib)
            recover = [timed(lambda s=store: JobStore.open(s).recover(repair=False))
                       for _ in range(args.repeat)]
            check = [timed(lambda s=store: subprocess.run(
                [sys.executable, "-m", "fntree", "check", str(s)], check=True,
                stdout=subprocess.DEVNULL)) for _ in range(args.repeat)]
            ms = 1000 * statistics.median(recover)
            print(f"{mib:>5} MiB {torn / 2**20:>7.1f} MiB {ms:>13.2f} "
                  f"{statistics.median(check):>17.3f}", flush=True)
            shutil.rmtree(store)


if __name__ == "__main__":
    main()
