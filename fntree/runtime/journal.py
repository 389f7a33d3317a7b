"""The journal: an append-only file of records, many records per fsync.

Each commit is one frame: a self-checking header (`fntree.checksum.frame_header`:
magic `FNj\\x02` | u64 payload length | u32 crc32(payload) | u32 crc32 of those
16 bytes) and the payload, the pickled list of the records appended since the
last commit. `Journal.append` only buffers; `Journal.commit` writes one frame and
fdatasyncs once (group commit), so N completions cost one sync, and a commit is
all there or not there at all.

`read_records` reads the frames in order, in time linear in the file's size,
and decides at the first frame that does not check, from that frame alone:

- A torn tail, which a process killed mid-write leaves (an exact prefix of what
  it wrote): the file ends inside the header, and the bytes there are a prefix
  of the magic; or the header checks and the payload runs past the end of the
  file; or everything from there on is zero bytes, or the last frame's payload
  ends in a zero byte where every pickle ends in `.` (a power cut that
  extended the file without its data, on some filesystems). It is reported, and
  `Journal.open` cuts it away before appending.
- Damage, which no kill can make: a complete header that does not check, a
  complete frame whose payload does not match its crc, or a checked payload that
  does not load. `read_records` raises `DamagedJournal` with the file and the
  offset; nothing is cut, since the frame may hold acknowledged records.

Outcomes as the workers pickled them: a job that spawned many children reports
its outcome (its children's and follow-on's specs) already pickled (`Result.pickled`,
fntree/runtime/worker.py), and the leader appends it as these bytes in an
`R_DONE_PICKLED` record, so no spec is pickled twice. Inside the frame they are
bytes like any other, under the frame's crc; `read_records` loads them and
returns the `R_DONE` record they stand for (one that does not load is damage,
named as above), so nothing after it sees the difference. The leader's own
spawning outcomes (fewer children) go as `R_DONE_FLAT` records, their specs
plain tuples (which the C pickler saves without calling into Python), read back
likewise. Segments written before these record kinds (plain `R_DONE` records)
read as they always did. A store whose journal may hold these kinds is marked
store format 3 in `fntree.json` before its leader writes a record
(fntree/runtime/meta.py), so an older fntree refuses it with "upgrade fntree"
rather than meeting kinds it does not know.
"""

from __future__ import annotations

import errno
import os
import pickle
import zlib
from pathlib import Path
from typing import Any, BinaryIO

from fntree.errors import JobStoreError
from fntree.runtime import crashpoints
from fntree.runtime.durable import HEADER, frame_header, parse_header
from fntree.runtime.records import R_DONE, R_DONE_FLAT, R_DONE_PICKLED, spec_outcome

MAGIC = b"FNj\x02"
PROTOCOL = pickle.HIGHEST_PROTOCOL


def write_error(path: Path, exc: OSError) -> JobStoreError:
    """A clear error for a failed write into the job store holding `path`."""
    root = path.parent.parent
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return JobStoreError(f"the disk holding job store {root} is full (writing {path.name}: "
                             f"{exc.strerror}): out of space (`df -h`) or of inodes "
                             f"(`df -i`); free some space or files, then continue with "
                             f"`fntree restart {root}`")
    return JobStoreError(f"cannot write {path} ({exc}); fix the cause, then continue with "
                         f"`fntree restart {root}`")


class DamagedJournal(JobStoreError):
    """A journal segment holds a frame that no crash mid-write can leave."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"{path} is damaged at byte {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


def encode(records: list[Any]) -> bytes:
    """One commit's records as a frame."""
    payload = pickle.dumps(records, PROTOCOL)
    return frame_header(MAGIC, payload) + payload


def read_records(path: Path) -> tuple[list[Any], int, bool]:
    """(records, bytes of good frames, whether a torn tail follows them).

    Raises DamagedJournal at a frame that a crash mid-write cannot leave. Reads
    each frame's header first: a torn tail's payload is never read.
    """
    records: list[Any] = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        offset = 0
        while offset < size:
            frame = _next_frame(path, f, offset, size)
            if frame is None:
                return records, offset, True
            batch, offset = frame
            records.extend(batch)
    return records, offset, False


def _next_frame(path: Path, f: BinaryIO, offset: int, size: int) -> tuple[list[Any], int] | None:
    """The records of the frame at `offset` and its end; None for a torn tail."""
    head = f.read(min(HEADER.size, size - offset))
    if len(head) < HEADER.size:
        if MAGIC.startswith(head[:len(MAGIC)]) or _zeros(head, f):
            return None
        raise DamagedJournal(path, offset, "the file ends in a partial frame header that does "
                                           "not start as frames do")
    header = parse_header(head, 0, MAGIC)
    if header is None:
        if _zeros(head, f):
            return None
        raise DamagedJournal(path, offset, "the frame header does not match its checksum")
    length, crc = header
    end = offset + HEADER.size + length
    if end > size:
        return None
    payload = f.read(length)
    if len(payload) < length:
        return None  # the file was cut under a reader by a leader cutting its torn tail
    if zlib.crc32(payload) != crc:
        if end == size and length and payload[-1] == 0:
            return None
        raise DamagedJournal(path, offset, "the frame is complete but its records do not "
                                           "match their checksum (a crash mid-write cannot "
                                           "do this)")
    try:
        batch = pickle.loads(payload)
    except Exception as exc:
        raise DamagedJournal(path, offset, f"the frame checks but its records do not load "
                                           f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(batch, list):
        raise DamagedJournal(path, offset, "the frame checks but holds no list of records")
    try:
        _decode_outcomes(batch)
    except Exception as exc:
        raise DamagedJournal(path, offset, f"the frame checks but a job's outcome in it does "
                                           f"not load ({type(exc).__name__}: {exc})") from exc
    return batch, end


def _decode_outcomes(batch: list[Any]) -> None:
    """Each `R_DONE_PICKLED` or `R_DONE_FLAT` record of a frame as the `R_DONE` it stands for."""
    for k, record in enumerate(batch):
        kind = record[0]
        if kind == R_DONE_PICKLED:
            batch[k] = (R_DONE, record[1], pickle.loads(record[2]), *record[3:])
        elif kind == R_DONE_FLAT:
            batch[k] = (R_DONE, record[1], spec_outcome(record[2]), *record[3:])


def _zeros(head: bytes, f: BinaryIO) -> bool:
    """Whether `head` and the rest of `f` are zero bytes (a power cut's unwritten tail)."""
    if head.count(0) != len(head):
        return False
    while chunk := f.read(1 << 20):
        if chunk.count(0) != len(chunk):
            return False
    return True


class Journal:
    """An open journal segment, positioned for appending."""

    def __init__(self, path: Path, fd: int, size: int) -> None:
        self.path = path
        self._fd = fd
        self.size = size
        self._buffer: list[Any] = []
        self._broken: OSError | None = None

    @classmethod
    def open(cls, path: Path, good_size: int | None = None) -> Journal:
        """Open (or create) `path` for appending, cutting it to `good_size` if given."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        size = os.fstat(fd).st_size
        if good_size is not None and good_size != size:
            os.ftruncate(fd, good_size)
            os.fsync(fd)
            size = good_size
        os.lseek(fd, size, os.SEEK_SET)
        return cls(path, fd, size)

    def append(self, record: Any) -> None:
        """Buffer `record`; it is durable only after the next `commit`."""
        self._buffer.append(record)

    @property
    def pending(self) -> int:
        """Records appended since the last commit."""
        return len(self._buffer)

    def commit(self) -> None:
        """Write every buffered record as one frame and make it durable with one sync."""
        if self._broken is not None:
            raise write_error(self.path, self._broken)
        if not self._buffer:
            return
        data = encode(self._buffer)
        self._buffer = []
        crashpoints.point("journal.write")
        view = memoryview(data)
        if crashpoints.reached("journal.torn"):
            os.write(self._fd, view[: len(view) // 2])
            crashpoints.die()
        try:
            while view:
                view = view[os.write(self._fd, view):]
            crashpoints.point("journal.sync")
            os.fdatasync(self._fd)
        except OSError as exc:
            # The file may now end in part of a frame: never append after it. The next
            # leader cuts the torn tail.
            self._broken = exc
            raise write_error(self.path, exc) from exc
        self.size += len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
