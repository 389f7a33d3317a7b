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
Readers take the archive of older fntree versions (`events.log.gz`, one gzip
member per leader, read up to a member cut short or damaged, and `read_events`
says so instead of failing), the parts in order, then the log.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import logging
import os
import shutil
import socket
import stat
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from fntree.runtime.durable import open_private
from fntree.runtime.events import Failure, Observer
from fntree.runtime.paths import EVENT_PART, StorePaths
from fntree.runtime.records import O_SPAWN, Result, Task, job_hex
from fntree.runtime.snapshot import Snapshot

log = logging.getLogger("fntree")

FORMAT = 1
FLUSH_EVERY = 0.5  # seconds between writes of the queued events
YIELD_EVERY = 256  # events the writer formats before it lets other threads run
ARCHIVE_CHUNK = 1 << 16  # compressed bytes inflated at a time when reading the archive
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
        parts = self.paths.event_parts()
        part = self.paths.event_part(int(parts[-1].name.split(".")[1]) + 1 if parts else 1)
        number = int(part.name.split(".")[1])
        temp = self.paths.event_part_temp(number)
        name = part_name(number, parts[-1] if parts else None)
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


def open_regular(path: Path) -> BinaryIO:
    """`path` open for reading, if it is a regular file: a FIFO put in its place is never
    waited on (OSError, as for a directory; FileNotFoundError when it is missing)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def part_bytes() -> int:
    """The bound past which the event log is archived: FNTREE_EVENT_PART_BYTES, else
    PART_BYTES (a value that is not a positive whole number is warned of, and ignored)."""
    text = os.environ.get("FNTREE_EVENT_PART_BYTES", "").strip()
    if not text:
        return PART_BYTES
    if not text.isdigit() or int(text) <= 0:
        log.warning("FNTREE_EVENT_PART_BYTES=%r is not a positive whole number of bytes; the "
                    "event log is archived past %d bytes instead (unset it, or give one such "
                    "as 1000000)", text, PART_BYTES)
        return PART_BYTES
    return int(text)


def tidy(paths: StorePaths) -> None:
    """Repair what a leader killed while archiving left: half-written parts (removed) and
    a log already whole in its part (removed, or readers would see its events twice).

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


def log_is_archived(paths: StorePaths) -> bool:
    """Whether the event log is byte for byte the newest part (a leader was killed between
    the part's rename and the log's removal). Inflates the part only if its size matches."""
    parts = paths.event_parts()
    if not parts:
        return False
    try:
        with open_regular(paths.event_log()) as log_file, open_regular(parts[-1]) as raw:
            size = os.fstat(log_file.fileno()).st_size
            raw.seek(-4, os.SEEK_END)  # a gzip member ends in its text's size mod 2**32
            if not size or int.from_bytes(raw.read(4), "little") != size % (1 << 32):
                return False
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw, mode="rb") as part:
                while chunk := part.read(ARCHIVE_CHUNK):
                    if log_file.read(len(chunk)) != chunk:
                        return False
                return not log_file.read(1)
    except (OSError, EOFError, zlib.error):
        return False


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


def read_events(paths: StorePaths, cut: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """The events of the run in `paths`, in order; `issued` lines become one event per job.

    A line that does not parse (torn by a killed leader) is skipped. An archive
    cut short (a leader killed while compressing into it) is read up to the cut,
    and a sentence saying so is appended to `cut`.
    """
    cut = [] if cut is None else cut
    cut.extend(chain_problems(paths))
    for archive in (paths.event_archive(), *paths.event_parts()):
        yield from _parse(archive_lines(archive, cut))
    if log_is_archived(paths):
        return  # its events were just read from its part
    try:
        log_file = open_regular(paths.event_log())
    except FileNotFoundError:
        return
    except OSError as exc:
        cut.append(f"{paths.event_log()} cannot be read ({exc.strerror}), so its events are "
                   "not shown; remove it (the next leader starts a new one)")
        return
    with log_file:
        yield from _parse(log_file)


def part_name(number: int, previous: Path | None) -> str:
    """The name part `number` carries in its gzip header: its number and a link to the part
    before it (the last 8 bytes of that part, its checksum and size), so that a part
    missing, moved, or copied from another store is seen (`chain_problems`)."""
    link = "first"
    if previous is not None:
        with contextlib.suppress(OSError), open_regular(previous) as f:
            f.seek(-8, os.SEEK_END)
            link = f.read(8).hex()
    return f"events.{number}.{link}.log"


def chain_problems(paths: StorePaths) -> list[str]:
    """What is wrong with the sequence of the archive's parts, in sentences: a number
    missing, or a part whose header names another part before it (a part of another
    store, or of this one moved). Parts of older fntree versions name nothing, and pass."""
    found = []
    parts = paths.event_parts()
    numbers = [int(p.name.split(".")[1]) for p in parts]
    missing = sorted(set(range(1, max(numbers, default=0) + 1)) - set(numbers))
    if missing:
        found.append(f"the event log's part(s) {', '.join(map(str, missing[:10]))} are "
                     f"missing from {paths.root}, so the events they held are not counted; "
                     "restore them from a backup of the job store")
    for k, (number, part) in enumerate(zip(numbers, parts, strict=True)):
        name = _header_name(part)
        if name is None:
            continue
        previous = parts[k - 1] if k and numbers[k - 1] == number - 1 else None
        if number == 1 or previous is not None:
            expected = part_name(number, previous)
            if name != expected:
                found.append(f"{part.name} does not follow the part before it (its header "
                             f"names {name!r}, not {expected!r}): it was copied from another "
                             "job store or renamed, and its events may not be this run's; "
                             "remove it, or put back this store's own part")
    return found


def _header_name(path: Path) -> str | None:
    """The file name in `path`'s gzip header (RFC 1952 FNAME), or None."""
    try:
        with open_regular(path) as f:
            head = f.read(1024)
    except OSError:
        return None
    if len(head) < 10 or head[:3] != b"\x1f\x8b\x08" or not head[3] & 8:
        return None
    at = 10
    if head[3] & 4:  # FEXTRA: its length, then its bytes
        at += 2 + int.from_bytes(head[10:12], "little")
    end = head.find(b"\0", at)
    return head[at:end].decode("latin-1") if end > 0 else None


def archive_lines(path: Path, cut: list[str]) -> Iterator[bytes]:
    """The lines of every gzip member of `path`, up to the first one that is cut or damaged."""
    legacy = not EVENT_PART.fullmatch(path.name)
    why = ("a leader stopped while writing it" if legacy else "parts are renamed into place "
           "whole, so it was damaged or cut after it was written: a disk error, an edit, a "
           "copy cut short; restore it from a backup of the job store")
    try:
        with open_regular(path) as f:
            data = f.read()
    except FileNotFoundError:
        return
    except OSError as exc:
        cut.append(f"{path} cannot be read ({exc.strerror or exc}), so its events are not "
                   "shown")
        return
    pos = 0
    while pos < len(data):
        inflater = zlib.decompressobj(wbits=31)
        tail, fed = b"", pos
        while fed < len(data) and not inflater.eof:
            chunk = data[fed:fed + ARCHIVE_CHUNK]
            text, inflater = _inflate(inflater, chunk)
            lines = (tail + text).split(b"\n")
            tail = lines.pop()
            yield from lines
            if inflater is None:
                cut.append(f"{path} is cut short or damaged: from byte {pos} on it does not "
                           f"decompress to the end ({why}), so the events after the damage "
                           "are not shown")
                return
            fed += len(chunk)
        if not inflater.eof:
            cut.append(f"{path} is cut short: from byte {pos} on it ends before its end "
                       f"marker ({why}), so the events after the cut are not shown")
            return
        yield tail
        pos = fed - len(inflater.unused_data)


def _inflate(inflater: Any, chunk: bytes) -> tuple[bytes, Any]:
    """(text, inflater) from `chunk`; at damage, the text before it and None."""
    saved = inflater.copy()
    try:
        return inflater.decompress(chunk), inflater
    except zlib.error:
        pass
    text = b""
    for start in range(0, len(chunk), 64):
        try:
            text += saved.decompress(chunk[start:start + 64])
        except zlib.error:
            break
    return text, None


def _parse(lines: Iterable[str | bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        if event.get("ev") == "issued":
            for job, name, attempt in event.get("jobs", ()):
                yield {"t": event["t"], "ev": "issued", "job": job, "name": name,
                       "attempt": attempt, "packet": event.get("packet"),
                       "cpu": event.get("cpu", 1), "memory": event.get("memory"),
                       "time": event.get("time")}
        else:
            yield event
