"""Named points in fntree's write paths where a test can make a process die.

`FNTREE_CRASH_AT=NAME:N` makes the process SIGKILL itself the N-th time it
reaches point NAME (N defaults to 1). The chaos tests use it to land a kill
between every pair of steps of a commit, the narrowest windows there are.
When the variable is unset, `reached` costs one comparison.

A suffix names the process the point counts in, and makes the leader die there:
`NAME:N@leader` counts in the leader only (its workers inherit the variable and
ignore it), so a point both reach (`objects.write`) kills the leader at its own
write; `NAME:N@worker` counts in each worker (a process with the `FNTREE_WORKER`
mark) on its own, and the worker that reaches it SIGKILLs its leader, then
itself: its value write is cut by the leader's death, as a SIGKILL of the leader
from outside at that instant would cut it (the worker would die of that a moment
later, by PDEATHSIG). `@worker` is for the local batch system, whose workers are
their leader's children. A leader passes its own variable to its workers
(`for_workers`); the run's recorded environment never holds it, so a later leader's
workers are not armed by an earlier leader's variable.

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
`objects.rename` (renamed to its name, directory not yet synced; runtime/objects.py);
`events.fold` (the event log's rollup durable, the parts it folded not yet removed;
runtime/eventlog.py).
"""

from __future__ import annotations

import contextlib
import os
import signal

ENV = "FNTREE_CRASH_AT"
WORKER_MARK = "FNTREE_WORKER"  # fntree/batch/proctree.py: set in every worker's environment
POINTS = ("journal.write", "journal.torn", "journal.sync", "leader.commit", "leader.clean",
          "compact.write", "compact.rename", "compact.snapshot", "compact.segment",
          "compact.remove", "store.create", "leader.start", "objects.write",
          "objects.rename", "objects.collect", "events.fold")


def _parse(value: str | None) -> tuple[str | None, int, str]:
    """(the point, the count, "" or the process it counts in) of a `FNTREE_CRASH_AT` value."""
    if not value:
        return None, 0, ""
    spec, at, where = value.partition("@")
    name, _, count = spec.partition(":")
    if name not in POINTS or (at and where not in ("leader", "worker")) or not (
            count or "1").isdigit():
        raise ValueError(f"{ENV}={value!r}: not a crash point; write NAME[:N][@leader|@worker], "
                         f"where NAME is one of {', '.join(POINTS)}")
    return name, int(count or 1), where


def _armed_here(name: str | None, where: str) -> str | None:
    """The armed point, or None in a process the suffix leaves out."""
    in_worker = bool(os.environ.get(WORKER_MARK))
    return None if (where == "leader" and in_worker) or (where == "worker"
                                                         and not in_worker) else name


_name, _remaining, _where = _parse(os.environ.get(ENV))
_armed = _armed_here(_name, _where)


def reached(name: str) -> bool:
    """True when the armed crash is due here (the caller then calls `die`)."""
    global _remaining
    if _armed != name:
        return False
    _remaining -= 1
    return _remaining == 0


def die() -> None:
    """SIGKILL this process; a worker armed `@worker` SIGKILLs its leader first."""
    if _where == "worker":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def for_workers(env: dict[str, str]) -> dict[str, str]:
    """The environment `env` of this leader's workers with this leader's own `FNTREE_CRASH_AT`
    (or none): a run's recorded environment never carries one to a later leader's workers."""
    env = {name: value for name, value in env.items() if name != ENV}
    if os.environ.get(ENV):
        env[ENV] = os.environ[ENV]
    return env


def point(name: str) -> None:
    """Die here if the armed crash is due."""
    if _armed == name and reached(name):
        die()
