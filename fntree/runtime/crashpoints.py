"""Named points in the leader's commit path where a test can make it die.

`FNTREE_CRASH_AT=NAME:N` makes the process SIGKILL itself the N-th time it
reaches point NAME (N defaults to 1). The chaos tests use it to land a kill
between every pair of steps of a commit, the narrowest windows there are.
When the variable is unset, `reached` costs one comparison.

Points: `journal.write` (records buffered, nothing written), `journal.torn`
(half of the buffer written), `journal.sync` (written, not synced),
`leader.commit` (synced, nothing acted on yet), `leader.clean` (closed chains'
temp dirs being removed); the steps of a compaction (fntree/runtime/compaction.py):
`compact.write` (half of the snapshot's temp file written), `compact.rename`
(renamed to its name, directory not yet synced), `compact.snapshot` (snapshot
durable, new segment not yet made), `compact.segment` (new segment made, old ones
not yet removed), `compact.remove` (the oldest stale file removed, the others not),
`objects.collect` (one unused value out of line removed, the others not);
`store.create` (identity written, journal not yet), `leader.start` (a new leader's
first records, such as a restart's `RERUN`, committed; nothing issued yet),
`objects.write` (a value stored out of line: its temp file written, not synced),
`objects.rename` (renamed to its name, directory not yet synced; runtime/objects.py).
"""

from __future__ import annotations

import os
import signal

ENV = "FNTREE_CRASH_AT"
POINTS = ("journal.write", "journal.torn", "journal.sync", "leader.commit", "leader.clean",
          "compact.write", "compact.rename", "compact.snapshot", "compact.segment",
          "compact.remove", "store.create", "leader.start", "objects.write",
          "objects.rename", "objects.collect")


def _parse(value: str | None) -> tuple[str | None, int]:
    if not value:
        return None, 0
    name, _, count = value.partition(":")
    if name not in POINTS:
        raise ValueError(f"{ENV}={value!r}: unknown crash point; the points are "
                         f"{', '.join(POINTS)}")
    return name, int(count or 1)


_armed, _remaining = _parse(os.environ.get(ENV))


def reached(name: str) -> bool:
    """True when the armed crash is due here (the caller then calls `die`)."""
    global _remaining
    if _armed != name:
        return False
    _remaining -= 1
    return _remaining == 0


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def point(name: str) -> None:
    """Die here if the armed crash is due."""
    if _armed == name and reached(name):
        die()
