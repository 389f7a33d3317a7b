"""Compaction while running: the journal stays as long as the live state, not the history.

State: `Compaction` keeps the size of the newest snapshot (written, or loaded
by recovery), the live chains it holds, and how long each compaction held the
leader. The leader asks `due(journal bytes, live chains)` after every commit,
and compacts when the segment after the snapshot is longer than both `floor`
(`FNTREE_COMPACT_BYTES`, default `FLOOR`) and `ratio` (`FNTREE_COMPACT_RATIO`,
default `RATIO`) times the snapshot, scaled by the chains live now against
those it holds (a live state that shrank since is compacted sooner): then the
records that are no longer live outnumber what is live several times, and
rewriting what is live is cheaper than keeping the dead. So, at every instant
of a run:

- the journal holds at most a snapshot, a segment of `max(floor, ratio x
  snapshot)` bytes and the commit that crossed it (the store's journal is
  bounded by the live state plus `floor`, whatever the number of jobs made);
- a restart loads the snapshot and replays at most that segment: its work is
  bounded by what is live, and completed subtrees cost it nothing (a snapshot
  holds the open chains and the values they still hold; done-ness is counted
  per target and per code hash, never per job: fntree/runtime/state.py);
- each compaction writes at most 1/ratio as many bytes as the journal has
  written since the one before, so its cost, spread over the jobs, is a
  constant fraction of the journal's.

Order of durable writes (`compact`), each step a crash point
(fntree/runtime/crashpoints.py), with what a SIGKILL there leaves; every one
opens exact, since recovery reads the newest snapshot that exists and the
segments from its number on:

1. commit segment K (every record so far durable)          [journal.*]
2. write the live state to `journal/.snapshot.<K+1>.<pid>.<rand>.tmp`
                                                           [compact.write: half of it]
   a temp file: recovery removes it, `fntree check` names it
3. fsync it, rename it to `snapshot.<K+1>`                 [compact.rename]
   the rename may be lost with the directory's entry: then snapshot.K and
   segment K are still there, and exact
4. fsync `journal/`                                         [compact.snapshot]
   snapshot.K+1 holds the state at the end of segment K; segment K+1 does
   not exist yet, which recovery reads as empty
5. create `<K+1>.log`, fsync `journal/`                     [compact.segment]
6. remove the segments and snapshot before K+1, oldest first [compact.remove: one gone]
   what is older than the newest snapshot is never read again
7. collect the values out of line that no live job refers to, orphans last
   touched before the last moment no job ran (fntree/runtime/objects.py)
                                                           [objects.collect: one gone]

The leader compacts in its own thread between two turns, so nothing changes
the state while it is pickled; the stall is the pickling and the writes of one
snapshot, logged at debug level with the snapshot's size (`bench/compaction.py`
reports the longest).
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from typing import TYPE_CHECKING

from fntree.knobs import env_number
from fntree.runtime import crashpoints
from fntree.runtime.durable import atomic_write, fsync_dir, seal
from fntree.runtime.journal import Journal, write_error
from fntree.runtime.objects import CLOCK_SLACK, ObjectStore, collect_now

if TYPE_CHECKING:
    from fntree.runtime.state import RunState
    from fntree.runtime.store import JobStore

log = logging.getLogger("fntree")

FLOOR = 4 << 20  # bytes of journal a compaction never waits for less than
# The segment after a snapshot is compacted once it is longer than RATIO x the snapshot: a
# byte of snapshot costs the leader several times less than a byte of journal's worth of
# jobs, so at 4 compactions take a few percent of a run whose live state is large
# (bench/compaction.py --width 1000 --leaves 1000: 40 MB snapshots; at 1, 16% of its wall).
RATIO = 4.0


class Compaction:
    """When to compact, and what the compactions of this leader cost.

    `FNTREE_COMPACT_BYTES` and `FNTREE_COMPACT_RATIO` change `floor` and `ratio`
    (tests make them small, to compact every turn).
    """

    def __init__(self, floor: int | None = None, ratio: float | None = None) -> None:
        if floor is None:
            floor = int(env_number("FNTREE_COMPACT_BYTES", FLOOR, whole=True))
        if ratio is None:
            ratio = env_number("FNTREE_COMPACT_RATIO", RATIO, zero=True)
        self.floor, self.ratio = floor, ratio
        self.snapshot_bytes = 0  # the newest snapshot's size: written, or loaded by recovery
        self.snapshot_chains = 0  # and the live chains it holds
        self.stalls: list[float] = []  # seconds each compaction held the leader

    def saw(self, snapshot_bytes: int, chains: int) -> None:
        """The newest snapshot is `snapshot_bytes` long and holds `chains` live chains."""
        self.snapshot_bytes, self.snapshot_chains = snapshot_bytes, chains

    def due(self, journal_bytes: int, chains: int) -> bool:
        """Whether a segment of `journal_bytes` after the snapshot should be compacted, when
        `chains` are live: the snapshot's size is scaled to them, so a live state that has
        shrunk since (the end of a wide run) is compacted as soon as its journal outgrows it."""
        live = self.snapshot_bytes * chains / max(self.snapshot_chains, 1)
        return journal_bytes > self.floor and journal_bytes > self.ratio * live


def compact(store: JobStore, state: RunState, journal: Journal,
            segment: int) -> tuple[Journal, int]:
    """Write the live state as snapshot K+1 and continue in segment K+1 (steps above)."""
    began = time.perf_counter()
    journal.commit()
    nxt = segment + 1
    state.to_clean, pending = [], state.to_clean  # acted on by the leader, not recovery's
    state.origin = None if store.lineage is None else (store.lineage, nxt)
    try:
        body = seal(pickle.dumps(state, pickle.HIGHEST_PROTOCOL))
    finally:
        state.to_clean = pending
    _write_snapshot(store, nxt, body)
    try:
        new = store.new_segment(nxt)
        fsync_dir(store.paths.journal_dir)
    except OSError as exc:
        raise write_error(store.paths.segment(nxt), exc) from exc
    journal.close()
    crashpoints.point("compact.segment")
    remove_older(store, nxt)
    collect_now(ObjectStore(store.paths.objects), state, None if not state.running
                else store.quiet - CLOCK_SLACK)  # values no live job refers to
    stall = time.perf_counter() - began
    store.compaction.saw(len(body), len(state.chains))
    store.compaction.stalls.append(stall)
    log.debug("compacted the journal into snapshot.%d (%d bytes) in %.3f s", nxt, len(body),
              stall, extra={"compaction": (len(body), stall)})
    return new, nxt


def _write_snapshot(store: JobStore, number: int, body: bytes) -> None:
    """Steps 2-4: `body` as `journal/snapshot.<number>`, atomically and durably."""
    path = store.paths.snapshot(number)
    try:
        atomic_write(path, body, crash="compact")
    except OSError as exc:
        raise write_error(path, exc) from exc
    crashpoints.point("compact.snapshot")


def remove_older(store: JobStore, base: int) -> None:
    """Remove the segments and snapshots before `base`, oldest first, and temp files."""
    journal_dir = store.paths.journal_dir
    stale: list[tuple[int, int, str]] = []
    for entry in os.listdir(journal_dir):
        stem, _, ext = entry.partition(".")
        if stem == "snapshot" and ext.isdigit() and int(ext) < base:
            stale.append((int(ext), 1, entry))
        elif ext == "log" and stem.isdigit() and int(stem) < base:
            stale.append((int(stem), 0, entry))
        elif entry.startswith(".") and entry.endswith(".tmp"):
            stale.append((-1, 0, entry))
    for k, (_, _, entry) in enumerate(sorted(stale)):
        os.unlink(journal_dir / entry)
        if k == 0:
            crashpoints.point("compact.remove")
