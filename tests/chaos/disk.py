"""Chaos on the disk: the job store on a small tmpfs that fills and frees at random.

A `Ballast` thread grows a file on the store's filesystem until the disk is full
(or has a few KiB left, so writes are cut off midway), or, one time in four, makes
empty files until it has no inode left; holds them for a while and deletes them,
at random instants. Jobs that cannot write fail and are retried; a
leader that cannot write its journal stops with the full-disk error (a clear
message, no traceback): then the store must be sound (`fntree check`), and the
tree is restarted once the disk has room. Every tree must end with its exact
value, like every other tree of the chaos suite.

Mounting needs root (`mount -t tmpfs`); elsewhere `tmpfs` yields None and the
callers say so and skip this part.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import random
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from harness import SEEDS, Tally, finish_tree, run_until_complete, tree_seeds

from fntree.runtime.eventlog import read_events
from fntree.runtime.paths import StorePaths

DISK_SIZE = "16m"
DISK_INODES = 4096  # a tree's store needs a few hundred at most; the rest are filled
TREE_FILLS = 6  # disk fills per tree at most, so a long campaign spans many trees
DISK_TREE_JOBS = (30, 1500)  # trees whose run the fills span
CHUNK = 1 << 16
FULL_DISK = "is full"  # in the leader's error (fntree.runtime.journal.write_error)


@contextlib.contextmanager
def tmpfs(path: Path, size: str = DISK_SIZE) -> Iterator[str | None]:
    """Mount a tmpfs of `size` at `path`; yields None, or why it cannot be had."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        yield f"mounting a tmpfs needs root (this is uid {os.geteuid()})"
        return
    options = f"size={size},nr_inodes={DISK_INODES},mode=0700"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        yield f"mount -t tmpfs failed: {mounted.stderr.strip()}"
        return
    try:
        yield None
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


class Ballast(threading.Thread):
    """Fills the disk at `root` at random instants and frees it again, `fills` times."""

    def __init__(self, root: Path, rng: random.Random, fills: int) -> None:
        super().__init__(daemon=True)
        self.path, self.rng, self.fills_left = root / "ballast", rng, fills
        self.files = root / "ballast.d"
        self.fills = 0
        self.room = threading.Event()  # set while the ballast is gone
        self.room.set()
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while self.fills < self.fills_left and not self.done.wait(self.rng.uniform(0.2, 2)):
                self.fill()
                self.done.wait(self.rng.uniform(0.1, 2.0))
                self.free()
        finally:
            self.free()

    def fill(self) -> None:
        """Write until the disk is full, or has only `slack` bytes left (a write cut midway),
        or take every inode left."""
        slack = self.rng.choice([0, 0, self.rng.randrange(1, 64 * 1024)])
        self.room.clear()
        self.fills += 1
        if self.rng.random() < 0.25:
            self.take_inodes()
            return
        with open(self.path, "ab") as f:
            while True:
                stat = os.statvfs(self.path)
                free = stat.f_bavail * stat.f_frsize
                if free <= slack:
                    return
                try:
                    f.write(b"\0" * min(CHUNK, max(free - slack, 1)))
                    f.flush()
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
                    return

    def take_inodes(self) -> None:
        self.files.mkdir(exist_ok=True)
        for n in itertools.count():
            try:
                (self.files / str(n)).touch()
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
                return

    def free(self) -> None:
        self.path.unlink(missing_ok=True)
        shutil.rmtree(self.files, ignore_errors=True)
        self.room.set()

    # -- the Disk protocol of harness.run_until_complete ----------------------------------
    def refused(self, stderr: str) -> bool:
        """Whether a leader's failed exit is the full-disk error, stated cleanly."""
        assert "Traceback" not in stderr, stderr
        return FULL_DISK in stderr or "No space left on device" in stderr

    def wait_free(self) -> None:
        self.room.wait()


def disk_campaign(workdir: Path, fills: int, seed: int = 1968, tally: Tally | None = None,
                  first: list[int] = SEEDS) -> Tally:
    """Exactly `fills` fills of the store's disk, at most TREE_FILLS a tree, one leader kill
    a tree too; AssertionError (with the reason) where no tmpfs can be mounted.

    Trees `first`, then fresh ones. Counts into `tally` (a new one if none) as it
    goes, and returns it."""
    rng, trees_rng = random.Random(seed), random.Random(seed + 1)
    tally = tally if tally is not None else Tally()
    start = tally.disk_fills
    disk = workdir / "disk"
    with tmpfs(disk) as refused:
        assert refused is None, refused
        for tree_seed in tree_seeds(trees_rng, len(first) + fills, first, DISK_TREE_JOBS):
            if tally.disk_fills - start >= fills:
                break
            store = disk / f"tree-{tree_seed}"
            ballast = Ballast(disk, random.Random(tree_seed),
                              min(TREE_FILLS, fills - tally.disk_fills + start))
            ballast.start()
            try:
                try:
                    value, landed = run_until_complete(store, tree_seed, rng,
                                                       ["--retry-count", "1000"], 1,
                                                       tally=tally, disk=ballast)
                finally:
                    ballast.done.set()
                    ballast.join()
                tally.leader_kills += landed
                tally.disk_fills += ballast.fills
                tally.disk_refusals += refusals(store)
                finish_tree(store, tree_seed, value, tally)
            except AssertionError:  # keep the store once its disk is unmounted
                shutil.copytree(store, workdir / store.name, symlinks=True,
                                ignore_dangling_symlinks=True, dirs_exist_ok=True)
                raise
    return tally


def refusals(store: Path) -> int:
    """How many job attempts of the run in `store` failed on a write refused for want of
    space (its event log's failures)."""
    return sum(1 for e in read_events(StorePaths(store))
               if e.get("ev") == "failed" and "No space left" in str(e.get("message")))


def can_mount() -> str | None:
    """None where this process may mount a tmpfs (it tries one), else why not."""
    uid = os.geteuid()
    if uid != 0:
        return f"mounting a tmpfs needs root (this is uid {uid})"
    with tempfile.TemporaryDirectory(prefix="fntree-chaos-") as probe, \
            tmpfs(Path(probe), "1m") as refused:
        return refused
