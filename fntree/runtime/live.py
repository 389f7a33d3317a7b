"""Live output: a running job's messages and output leave its worker while it runs.

`LiveOutput` belongs to one `JobRunner`. Its state: the job being run (between
`begin` and `end`), how much of the job's scratch output (the file its fds 1 and
2 point at) is copied so far, and the fd of the job's live file. A daemon thread
wakes every `every` seconds (`$FNTREE_LIVE_EVERY`, default `EVERY`; 0 turns live
output off, and then messages leave with the job's result only) and, while a job runs:

- hands the job's new `context().log` messages to `send`, the transport's hook (a
  frame on the local worker's pipe; a sealed file beside the packet on the
  clusters), as `(name, job id, text)` triples; the Context bounds how many;
- from the job's second tick on (a job shorter than one tick never touches the
  store), copies the scratch output's new bytes to `StorePaths.live(job)`,
  `<store>/logs/live/<job>.log`, which starts with the kept log's header for this
  attempt. At most `limit` bytes (the kept log's limit) are copied, and at most
  `CHUNK` a tick; past the limit one line says the copy stops, and the kept log
  gets the head and tail as always.

Order of writes: the runner calls `end` before it appends the job's output to the
kept log (`append_log`), then removes the live file (`finish`): a reader that sees
the live file gone finds the whole attempt in the kept log. One lock serialises a
tick with `begin` and `end`, so nothing is copied or sent for a job after `end`.
The live files of jobs whose worker died are removed by the batch system
(`drop_live`), and a new leader clears the directory (`clear_live`) before its
first job starts. Nothing here is fsynced: it is for people, not recovery.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from fntree.batch.threads import start_daemon
from fntree.knobs import env_number
from fntree.runtime.context import Context
from fntree.runtime.durable import make_private_dir, open_private
from fntree.runtime.paths import StorePaths
from fntree.runtime.records import Task, job_hex

log = logging.getLogger("fntree")

EVERY = 0.5       # seconds between two looks at the running job
CHUNK = 1 << 20   # bytes copied to the live file at most per look

Send = Callable[[list[tuple[str, str, str]]], None]


def live_every() -> float:
    """Seconds between looks, from `$FNTREE_LIVE_EVERY` (0: live output off)."""
    return env_number("FNTREE_LIVE_EVERY", EVERY, zero=True)


def attempt_header(name: str, job_id: int, attempt: int, note: str = "") -> bytes:
    """The line that opens one attempt in a job's kept log and in its live file."""
    return f"=== {name} {job_hex(job_id)} attempt {max(attempt, 1)} {note}===\n".encode()


class LiveOutput:
    """Copies the running job's output to the store and passes its messages on."""

    def __init__(self, paths: StorePaths, scratch: int, limit: int,
                 every: float | None = None) -> None:
        self.paths = paths
        self.scratch = scratch
        self.limit = limit
        self.every = live_every() if every is None else every
        self.send: Send | None = None
        self._lock = threading.Lock()
        self._job: tuple[Task, Context] | None = None
        self._ticks = 0
        self._fd = -1
        self._copied = 0
        self._stop = threading.Event()
        if self.every > 0:
            start_daemon(self._loop, "fntree-live")

    def begin(self, task: Task, ctx: Context) -> None:
        """`task` starts now: the scratch output is emptied, and nothing is copied yet."""
        with self._lock:
            if os.fstat(self.scratch).st_size:  # most jobs print nothing: 1 us, not 5
                os.ftruncate(self.scratch, 0)
            os.lseek(self.scratch, 0, os.SEEK_SET)
            self._job, self._ticks, self._copied = (task, ctx), 0, 0

    def end(self) -> Path | None:
        """The job ended: nothing more is copied or sent for it. Its live file, if made."""
        with self._lock:
            made = self._fd >= 0
            if made:
                os.close(self._fd)
                self._fd = -1
            job, self._job = self._job, None
        return self.paths.live(job[0].job_id) if made and job is not None else None

    @staticmethod
    def finish(live: Path | None) -> None:
        """Remove a live file, once the job's output is in its kept log."""
        if live is not None:
            with contextlib.suppress(OSError):
                live.unlink()

    def close(self) -> None:
        self._stop.set()
        self.end()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with self._lock:
                    if self._job is not None:
                        self._tick(*self._job)
            except Exception as exc:  # live output is a convenience: the job goes on
                log.warning("live output of the running job failed (%s); it goes on, and its "
                            "output is kept when it ends", exc)
                self._ticks = -(1 << 30)  # no more copying for this job

    def _tick(self, task: Task, ctx: Context) -> None:
        messages = ctx.take_messages() if self.send is not None else []
        if messages and self.send is not None:
            hex_id = job_hex(task.job_id)
            self.send([(task.name, hex_id, text) for text in messages])
        self._ticks += 1
        if self._ticks >= 2:
            self._copy(task)

    def _copy(self, task: Task) -> None:
        size = os.fstat(self.scratch).st_size
        if self._fd < 0:
            make_private_dir(self.paths.live_dir)
            self._fd = open_private(self.paths.live(task.job_id),
                                    os.O_WRONLY | os.O_TRUNC | os.O_APPEND)
            os.write(self._fd, attempt_header(task.name, task.job_id, task.attempt))
        if self._copied >= self.limit or size <= self._copied:
            return
        n = min(size - self._copied, CHUNK, self.limit - self._copied)
        data = os.pread(self.scratch, n, self._copied)
        self._copied += len(data)
        if self._copied >= self.limit:
            data += (f"\n[... fntree: the live copy stops at {self.limit} bytes; the job's "
                     "kept log will hold the head and tail of its output ...]\n").encode()
        os.write(self._fd, data)


def drop_live(store_root: Path, job_ids: Iterable[int]) -> None:
    """Remove the live files of jobs whose worker died (their output goes to the kept log)."""
    paths = StorePaths(store_root)
    for job_id in job_ids:
        with contextlib.suppress(OSError):
            paths.live(job_id).unlink()


def clear_live(store_root: Path) -> None:
    """Remove the live files earlier leaders' workers left (no job of this store runs)."""
    live = StorePaths(store_root).live_dir
    try:
        names = os.listdir(live)
    except OSError:
        return
    for name in names:
        with contextlib.suppress(OSError):
            (live / name).unlink()
