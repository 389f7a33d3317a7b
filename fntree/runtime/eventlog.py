"""The event log: a run's events appended to the job store, for people and for the CLI.

`EventLog` is an `Observer` the leader always has. It writes one JSON object per
line to `StorePaths.event_log()` (`DIR/events.log`), so that `fntree status`,
`fntree stats` and `grep` read the same facts the live display saw, after the
fact or while another process drives the run. The lines, by `ev`:

    leader    a leader started: epoch, pid, host, cores, jobs done before, live chains,
              queues (whether its batch system says when a queued packet starts)
    rerun     that leader started the run again from its root (--rerun-changed): epoch,
              reruns (how many times so far), root (the root call's target)
    issued    one packet handed to the batch system: packet, jobs [[job, name, attempt]],
              and the packet's cpu, memory (bytes) and time (seconds) as declared
    started   the worker of a packet that waited in the scheduler's queue started: jobs
    done      a job completed: job, name, attempt, start (epoch seconds), wall, cpu
              (seconds), rss (peak KiB of the job's own process tree, the worker's
              baseline left out: fntree.runtime.peakmem.PeakMemory), chained, spawned, and
              `"cached": true` when its value came from the cache across runs
    failed    an attempt failed: job, name, attempt, permanent, message, log
    message   a target's `context().log(text)`: job, name, text
    finished  the leader stopped: epoch, ok

Every line also has `t`, the leader's clock when it learned the fact.

It is a record for people, not the crash-safety journal: hooks only append to a
deque (O(1), no I/O on the leader's thread); a daemon thread formats and writes
what has queued at most every `FLUSH_EVERY` seconds, and `finished` drains it.
The writer yields the GIL every few hundred events, so that a leader coming
back from a system call does not wait out the interpreter's switch interval.
Nothing is fsynced, so a leader killed outright loses at most the last moments;
the next leader starts on a fresh line, and `read_events` skips a torn one.

The log stays bounded while a run goes on: when it grows past `PART_BYTES` (or
`FNTREE_EVENT_PART_BYTES`, which tests make small to rotate often), and
when its leader finishes, the writer thread compresses it (about 8x) into the
next part of the archive, `events.<n>.log.gz`, and starts it afresh. A part is
written under a temporary name and renamed whole, so a part is never cut. A
leader killed while writing one leaves the temporary file; one killed between
the rename and the removal of the log leaves its events in both. Readers skip a
log that is byte for byte the newest part (`log_is_archived`), and the next
leader's writer thread, before its first write, removes both leftovers (`tidy`).

The archive stays bounded too: past `FNTREE_EVENT_KEEP_BYTES` of parts (default
`eventrollup.KEEP_BYTES`, 128 MiB, about 4.8 million jobs of per-job detail; 0
keeps every part), the writer thread, after archiving a part, folds the oldest
parts (and the archive of older versions) into the rollup `events.rollup.json`
(`fold` in fntree/runtime/eventfold.py; the rollup's fields in eventrollup.py):
the sums and maxima `fntree stats` prints, per target, and what `fntree status`
reads. The newest part is always
kept. Order of writes: the rollup durably (temp, fsync, rename, fsync dir),
then the removal of the folded parts; a leader killed between the two
(crash point `events.fold`) leaves parts already in the rollup, which readers
skip (numbered up to its `last_part`) and `tidy` removes.
Readers take the archive of older fntree versions (`events.log.gz`, one gzip
member per leader, read up to a member cut short or damaged, and `read_events`
says so instead of failing), the parts in order, then the log: the readers are
in fntree/runtime/eventparts.py.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections import deque
from typing import Any, TextIO

from fntree.knobs import env_number
from fntree.runtime.durable import open_private
from fntree.runtime.eventfold import fold
from fntree.runtime.eventparts import (
    ARCHIVE_CHUNK,
    log_is_archived,
    next_part,
    part_number,
    read_events,
)
from fntree.runtime.eventrollup import folded_through, keep_bytes
from fntree.runtime.events import Failure, Observer
from fntree.runtime.paths import StorePaths
from fntree.runtime.records import O_SPAWN, Result, Task, job_hex
from fntree.runtime.snapshot import Snapshot

__all__ = ["EventLog", "part_bytes", "read_events", "spawned_jobs", "tidy"]  # read_events:
# its readers' old home, kept (fntree/runtime/eventparts.py holds it)

log = logging.getLogger("fntree")

FORMAT = 1
FLUSH_EVERY = 0.5  # seconds between writes of the queued events
YIELD_EVERY = 256  # events the writer formats before it lets other threads run
PART_BYTES = 64 << 20  # the event log is archived into a part when it grows past this
_CACHED = ',"cached":true'


class EventLog(Observer):
    """Appends a run's events to its job store's event log."""

    def __init__(self, paths: StorePaths) -> None:
        self.paths = paths
        self.path = paths.event_log()
        self._queue: deque[tuple[Any, ...]] = deque()
        self._names: dict[str, str] = {}
        self._file: TextIO | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._packets = 0
        self._epoch = 0
        self._broken = False
        self.part_bytes = part_bytes()
        self.keep_bytes = keep_bytes()
        self._fold_broken = False

    # -- hooks: O(1) appends on the leader's thread -------------------------------------
    def started(self, jobstore: str, epoch: int, snapshot: Snapshot) -> None:
        self._epoch = epoch
        self._queue.append(("leader", time.time(), epoch, snapshot.count("done"),
                            len(snapshot.chains), snapshot.reports_start))
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._flush_loop, name="fntree-eventlog",
                                            daemon=True)
            self._thread.start()

    def rerun(self, epoch: int, reruns: int, root: str) -> None:
        self._queue.append(("rerun", time.time(), epoch, reruns, root))

    def issued(self, tasks: list[Task]) -> None:
        self._packets += 1
        self._queue.append(("issued", time.time(), self._packets, tasks))

    def packet_started(self, tasks: list[Task]) -> None:
        self._queue.append(("started", time.time(), [job_hex(t.job_id) for t in tasks]))

    def completed(self, name: str, result: Result) -> None:
        self._queue.append(("done", time.time(), name, result))

    def failed(self, failure: Failure) -> None:
        self._queue.append(("failed", time.time(), failure))

    def message(self, name: str, job_id: str, text: str) -> None:
        self._queue.append(("message", time.time(), name, job_id, text))

    def finished(self, ok: bool) -> None:
        if self._thread is None:
            return  # no leader started (the run had already completed)
        self._queue.append(("finished", time.time(), self._epoch, ok))
        self._stop.set()
        self._thread.join()
        self._thread = None
        if self._file is not None:
            with contextlib.suppress(OSError):  # already reported by `flush`
                self._file.close()
            self._file = None
        if ok and not self._broken:
            self._archive()

    def _archive(self) -> None:
        """Move the event log into the next part of the archive (about 8x smaller).

        The part is written whole under a temporary name, then renamed; a crash
        between the rename and the log's removal leaves events in both, which
        readers skip and the next leader repairs (`tidy`).
        """
        if not os.path.exists(self.path):
            return  # archived when it grew past PART_BYTES, and nothing written since
        number, name = next_part(self.paths)
        part = self.paths.event_part(number)
        temp = self.paths.event_part_temp(number)
        try:
            with open(self.path, "rb") as log_file, \
                    open(open_private(temp, os.O_WRONLY | os.O_TRUNC), "wb") as raw, \
                    gzip.GzipFile(name, fileobj=raw, mode="wb", compresslevel=6) as f:
                shutil.copyfileobj(log_file, f, ARCHIVE_CHUNK)  # never the whole log in memory
            os.rename(temp, part)
            self.path.unlink()
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            log.warning("cannot archive the event log %s (%s); it stays as it is", self.path,
                        exc)
            return
        if self.keep_bytes and not self._fold_broken:
            self._fold_broken = not fold(self.paths, self.keep_bytes)

    # -- the writer thread ---------------------------------------------------------------
    def _flush_loop(self) -> None:
        tidy(self.paths)
        while not self._stop.wait(FLUSH_EVERY):
            self.flush()
        self.flush()

    def flush(self) -> None:
        """Write every queued event to the log now."""
        queue = self._queue
        if self._broken:
            queue.clear()
            return
        lines = []
        for k in range(1, len(queue) + 1):  # what is queued now; later events wait their turn
            lines.append(self._format(queue.popleft()))
            if not k % YIELD_EVERY:
                time.sleep(0)  # let the leader have the GIL back soon, not after 5 ms
        if not lines:
            return
        try:
            if self._file is None:
                self._file = self._open()
            self._file.write("".join(lines))
            self._file.flush()
            if self._file.tell() >= self.part_bytes:  # bounded while the run goes on
                self._file.close()
                self._file = None
                self._archive()
        except OSError as exc:
            self._broken = True
            log.warning("cannot write the event log %s (%s); the run goes on, but `fntree "
                        "status` and `fntree stats` will miss its events", self.path, exc)

    def _open(self) -> TextIO:
        f = open(open_private(self.path, os.O_RDWR | os.O_APPEND),  # noqa: SIM115 (kept open)
                 "a+", encoding="utf-8")
        end = f.tell()
        if end:
            f.seek(end - 1)
            if f.read(1) != "\n":
                f.write("\n")  # a torn last line from a leader that was killed
        return f

    def _name(self, name: str) -> str:
        quoted = self._names.get(name)
        if quoted is None:
            quoted = self._names[name] = json.dumps(name)
        return quoted

    def _format(self, event: tuple[Any, ...]) -> str:
        kind, t = event[0], event[1]
        if kind == "done":
            name, r = event[2], event[3]
            start, wall, cpu, rss = r.stats
            spawned = spawned_jobs(r.outcome)
            return (f'{{"t":{t:.3f},"ev":"done","job":"{r.job_id:016x}","name":'
                    f'{self._name(name)},"attempt":{r.attempt},"start":{start:.6f},'
                    f'"wall":{wall:.6f},"cpu":{cpu:.6f},"rss":{int(rss)},'
                    f'"chained":{"true" if r.chained else "false"},"spawned":{spawned}'
                    f'{_CACHED if r.cached else ""}}}\n')
        if kind == "issued":
            tasks: list[Task] = event[3]
            jobs = ",".join(f'["{task.job_id:016x}",{self._name(task.name)},{task.attempt}]'
                            for task in tasks)
            res = tasks[0].res  # a packet's tasks share their resources
            memory = res.memory or "null"
            declared = "null" if res.time is None else f"{res.time:g}"
            return (f'{{"t":{t:.3f},"ev":"issued","packet":{event[2]},"cpu":{res.cpu:g},'
                    f'"memory":{memory},"time":{declared},"jobs":[{jobs}]}}\n')
        if kind == "failed":
            f: Failure = event[2]
            record: dict[str, Any] = {"job": f.job_id, "name": f.name, "attempt": f.attempt,
                                      "permanent": f.permanent, "message": f.message,
                                      "log": f.log_path}
        elif kind == "message":
            record = {"job": event[3], "name": event[2], "text": event[4]}
        elif kind == "rerun":
            record = {"epoch": event[2], "reruns": event[3], "root": event[4]}
        elif kind == "leader":
            record = {"format": FORMAT, "epoch": event[2], "pid": os.getpid(),
                      "host": socket.gethostname(), "cores": os.cpu_count() or 1,
                      "done": event[3], "live": event[4], "queues": event[5]}
        elif kind == "started":
            record = {"jobs": event[2]}
        else:
            record = {"epoch": event[2], "ok": event[3]}
        return json.dumps({"t": round(t, 3), "ev": kind, **record}) + "\n"


def part_bytes() -> int:
    """The bound past which the event log is archived: FNTREE_EVENT_PART_BYTES, else
    PART_BYTES (a value that is not a positive whole number is warned of, and ignored)."""
    return int(env_number("FNTREE_EVENT_PART_BYTES", PART_BYTES, whole=True))


def tidy(paths: StorePaths) -> None:
    """Repair what a leader killed while archiving left: half-written parts (removed), a
    log already whole in its part, and parts already folded into the rollup (removed, or
    readers would have to skip them forever), and the rollup's half-written temp file.

    Only the leader calls this, holding the store's lock: no other process writes parts.
    """
    for temp in paths.event_part_temps():
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
            log.info("removed %s, a part of the event log a killed leader left half-written",
                     temp)
    if log_is_archived(paths):
        with contextlib.suppress(FileNotFoundError):
            paths.event_log().unlink()
            log.info("removed %s: a killed leader had archived it whole", paths.event_log())
    last, legacy, _ = folded_through(paths)
    folded = [p for p in paths.event_parts() if part_number(p) <= last]
    folded += [paths.event_archive()] if legacy else []
    for path in folded:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            log.info("removed %s: a killed leader had folded it into %s already", path,
                     paths.event_rollup().name)
    for temp in paths.root.glob(f".{paths.event_rollup().name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
            log.info("removed %s, a rollup a killed leader left half-written", temp)


def spawned_jobs(outcome: tuple[Any, ...] | None) -> int:
    """How many new jobs a completion's outcome names: children, their deps, the follow-on."""
    if outcome is None or outcome[0] != O_SPAWN:
        return 0
    follow = () if outcome[2] is None else (outcome[2],)
    return _count_specs(outcome[1]) + _count_specs(follow)


def _count_specs(specs: Any) -> int:
    count = 0
    stack = list(specs)
    while stack:
        count += 1
        stack.extend(stack.pop().deps)
    return count
