"""The journal: an append-only file of records, many records per fsync.

Each commit is one frame: `u32 length | u32 crc32 | payload`, little-endian,
whose payload is the pickled list of the records appended since the last
commit. `Journal.append` only buffers; `Journal.commit` writes one frame and
fdatasyncs once (group commit), so N completions cost one sync, and a commit is
all there or not there at all.

A crash mid-write leaves a torn last frame: `read_records` stops before it and
`Journal.open` cuts it away before appending. A bad frame followed by a good one
cannot come from a crash (the later frame was written after the earlier was
synced): that is damage, and `read_records` raises `DamagedJournal` rather
than silently dropping acknowledged records.
"""

from __future__ import annotations

import errno
import os
import pickle
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fntree.errors import JobStoreError
from fntree.runtime import crashpoints

_HEADER = struct.Struct("<II")
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


class DamagedJournal(ValueError):
    """A journal segment holds a bad frame followed by good ones."""

    def __init__(self, path: Path, offset: int) -> None:
        super().__init__(f"{path} is damaged at byte {offset}, before records that were "
                         "written after it")
        self.path = path
        self.offset = offset


def encode(records: list[Any]) -> bytes:
    """One commit's records as a frame."""
    payload = pickle.dumps(records, PROTOCOL)
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_records(path: Path) -> tuple[list[Any], int, bool]:
    """(records, bytes of good frames, whether a torn tail follows them).

    Raises DamagedJournal when a good frame follows a bad one.
    """
    data = path.read_bytes()
    records: list[Any] = []
    offset = 0
    for batch, end in _frames(data, 0):
        records.extend(batch)
        offset = end
    if offset != len(data) and _good_frame_after(data, offset):
        raise DamagedJournal(path, offset)
    return records, offset, offset != len(data)


def _frame_at(data: bytes, offset: int) -> tuple[Any, int] | None:
    if offset + _HEADER.size > len(data):
        return None
    length, crc = _HEADER.unpack_from(data, offset)
    start = offset + _HEADER.size
    end = start + length
    if end > len(data) or zlib.crc32(data[start:end]) != crc:
        return None
    try:
        batch = pickle.loads(data[start:end])
    except Exception:
        return None
    return (batch, end) if isinstance(batch, list) else None


def _frames(data: bytes, offset: int) -> Iterator[tuple[list[Any], int]]:
    while (frame := _frame_at(data, offset)) is not None:
        yield frame
        offset = frame[1]


def _good_frame_after(data: bytes, offset: int) -> bool:
    return any(_frame_at(data, pos) is not None for pos in range(offset + 1, len(data)))


class Journal:
    """An open journal segment, positioned for appending."""

    def __init__(self, path: Path, fd: int, size: int) -> None:
        self.path = path
        self._fd = fd
        self.size = size
        self._buffer: list[Any] = []
        self.pending = 0
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
        self.pending += 1

    def commit(self) -> None:
        """Write every buffered record as one frame and make it durable with one sync."""
        if self._broken is not None:
            raise write_error(self.path, self._broken)
        if not self._buffer:
            return
        data = encode(self._buffer)
        self._buffer = []
        self.pending = 0
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
