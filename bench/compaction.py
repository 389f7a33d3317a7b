"""Compaction while running: how often, how long it holds the leader, and the journal's size.

Runs WIDTH middles of LEAVES leaves each (with follow-ons summing, as
bench/wide.py) in this process, and prints the compactions the leader made
(from its debug log), the longest and the total time they held the leader, the
largest snapshot, the journal's largest size sampled every `--every` seconds
(`journal/`, against the whole store's, whose `events.log` is a record for
people that grows with the jobs), jobs/s, and the leader's CPU seconds.

    python bench/compaction.py --width 1000 --leaves 1000
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import threading
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
def root(width: int, leaves: int) -> fntree.Call:
    return add([middle(leaves) for _ in range(width)])


class Compactions(logging.Handler):
    """Collects the (snapshot bytes, seconds) of every compaction the leader logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[int, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "compaction"):
            self.seen.append(record.compaction)


def size_of(path: Path) -> int:
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(FileNotFoundError):  # compacted away meanwhile
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


class Sampler(threading.Thread):
    def __init__(self, store: Path, every: float) -> None:
        super().__init__(daemon=True)
        self.store, self.every = store, every
        self.journal = self.whole = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.every):
            self.journal = max(self.journal, size_of(self.store / "journal"))
            self.whole = max(self.whole, size_of(self.store))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--leaves", type=int, default=1000)
    parser.add_argument("--every", type=float, default=0.5)
    args = parser.parse_args()
    handler = Compactions()
    logger = logging.getLogger("fntree")
    jobs = 2 + args.width * (args.leaves + 2)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        sampler = Sampler(store, args.every)
        sampler.start()
        began, cpu = time.perf_counter(), time.process_time()
        logger.addHandler(handler)
        try:
            value = fntree.run(root(args.width, args.leaves), jobstore=store,
                               log_level="DEBUG")
        finally:
            logger.removeHandler(handler)
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        sampler.halt.set()
        sampler.join()
    assert value == args.width * args.leaves
    stalls = [s for _, s in handler.seen]
    print(f"{jobs} jobs in {wall:.1f} s ({jobs / wall:,.0f} jobs/s, leader CPU {cpu:.1f} s); "
          f"{len(stalls)} compactions, longest {max(stalls, default=0) * 1e3:.0f} ms, total "
          f"{sum(stalls):.2f} s, largest snapshot "
          f"{max((b for b, _ in handler.seen), default=0) / 1e6:.2f} MB; journal at most "
          f"{sampler.journal / 1e6:.1f} MB, store at most {sampler.whole / 1e6:.1f} MB; "
          f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
