"""The journal: an append-only file of records, many records per fsync.

Frame: `u32 length | u32 crc32 | payload`, little-endian; the payload is one
pickled record. `Journal.append` only buffers; `Journal.commit` writes the
buffer and fdatasyncs once (group commit), so N completions cost one sync.
`read_records` stops at the first frame that is short or fails its crc: that is
a torn tail left by a crash mid-write, and `Journal.open` truncates it away
before appending, so a torn frame can never be followed by good ones.
"""

from __future__ import annotations

import os
import pickle
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_HEADER = struct.Struct("<II")
PROTOCOL = pickle.HIGHEST_PROTOCOL


def encode(record: Any) -> bytes:
    """One record as a frame."""
    payload = pickle.dumps(record, PROTOCOL)
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_records(path: Path) -> tuple[list[Any], int, bool]:
    """(records, bytes of good frames, whether a torn or damaged tail follows them)."""
    data = path.read_bytes()
    records: list[Any] = []
    offset = 0
    for record, end in _frames(data):
        records.append(record)
        offset = end
    return records, offset, offset != len(data)


def _frames(data: bytes) -> Iterator[tuple[Any, int]]:
    offset, size = 0, len(data)
    while offset + _HEADER.size <= size:
        length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        end = start + length
        if end > size:
            return
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            return
        try:
            record = pickle.loads(payload)
        except Exception:
            return
        yield record, end
        offset = end


class Journal:
    """An open journal segment, positioned for appending."""

    def __init__(self, path: Path, fd: int, size: int) -> None:
        self.path = path
        self._fd = fd
        self.size = size
        self._buffer: list[bytes] = []
        self.pending = 0

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
        self._buffer.append(encode(record))
        self.pending += 1

    def commit(self) -> None:
        """Write every buffered record and make them durable with one sync."""
        if not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        self.pending = 0
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        os.fdatasync(self._fd)
        self.size += len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
