"""A long pickle kept in pieces: its stream and its large buffers, never joined in memory.

A value or an argument that holds large `bytes`, `bytearray` or pickle protocol 5
buffers (numpy arrays give theirs) is pickled with those buffers out of band
(`fntree.runtime.codec`): the stream refers to them, and `Pickled` keeps the
stream and the buffers beside it. A `bytes` buffer is the value's own object, not
a copy; anything mutable is copied when pickled (a later change to it does not
change the call that took it). A `Pickled` lives only in the process that made
it, between the pickling and `ObjectStore.put`, which writes the pieces one after
the other into one object file; a worker reads each piece of that file into an
object of its own (`ObjectStore.load`) and unpickles the stream around them. So
the bytes of a large value are copied once on the way out (into the file) and
once on the way in (from it), as by plain file I/O, beside one sha256 each way.

The object file of a `Pickled` (its name is the sha256 of all its bytes):

    b"FNp\\x01" | u32 pieces | pieces x (u8 kind, u64 length) | stream | pieces...

`kind` says what a piece is read back as: `BYTES` and `BYTEARRAY` stand for a
persistent id of the stream (`-1 - index`), `BUFFER` and `WRITABLE_BUFFER` are
protocol 5 buffers, in order (read-only and writable). A file without the magic
is a whole pickle stream (any protocol's stream starts with another byte).
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

MAGIC = b"FNp\x01"
_COUNT = struct.Struct("<I")
_PIECE = struct.Struct("<BQ")
BYTES, BYTEARRAY, BUFFER, WRITABLE_BUFFER = KINDS = range(4)
OUT_OF_BAND = 64 * 1024  # bytes: longer buffers travel out of band (objects.INLINE_LIMIT)


class Pickled:
    """A pickle stream and its out-of-band pieces (see the module's docstring)."""

    __slots__ = ("kinds", "pieces", "size", "stream")

    def __init__(self, stream: bytes, pieces: tuple[bytes, ...], kinds: tuple[int, ...]) -> None:
        self.stream = stream
        self.pieces = pieces
        self.kinds = kinds
        self.size = header_size(len(pieces)) + len(stream) + sum(map(len, pieces))

    def __len__(self) -> int:
        return self.size

    def __reduce__(self) -> tuple[Any, ...]:
        # (from an isolated job's process to its worker: pickled in band, at the cost of a copy)
        return Pickled, (self.stream, self.pieces, self.kinds)

    def header(self) -> bytes:
        pieces = zip(self.kinds, self.pieces, strict=True)
        return MAGIC + _COUNT.pack(len(self.pieces)) + b"".join(
            _PIECE.pack(kind, len(piece)) for kind, piece in pieces)

    def loaded(self) -> Loaded:
        """What `read_parts` would read back from this object's file (pieces copied)."""
        return Loaded.of([b"", self.stream,
                          *(bytearray(p) if k in (BYTEARRAY, WRITABLE_BUFFER) else p
                            for k, p in zip(self.kinds, self.pieces, strict=True))],
                         list(self.kinds))

    def views(self) -> Iterator[memoryview]:
        """The bytes of the object file, in order, without a copy."""
        yield memoryview(self.header())
        yield memoryview(self.stream)
        for piece in self.pieces:
            yield memoryview(piece)


def parse_header(head: bytes) -> list[tuple[int, int]] | None:
    """[(kind, length)] of the pieces if `head` (the file's start) is a `Pickled` file's header
    of that many bytes, None for a whole pickle stream. `head` must hold `header_size(head)`."""
    if not head.startswith(MAGIC):
        return None
    (count,) = _COUNT.unpack_from(head, len(MAGIC))
    base = len(MAGIC) + _COUNT.size
    return [_PIECE.unpack_from(head, base + i * _PIECE.size) for i in range(count)]


def header_size(count: int) -> int:
    return len(MAGIC) + _COUNT.size + count * _PIECE.size


class Loaded(NamedTuple):
    """An object read back: its pickle stream, the pieces its persistent ids -1, -2, ... name,
    and its protocol 5 buffers in order (fntree/runtime/pickled.py)."""

    stream: bytes
    pieces: list[bytes | bytearray]
    buffers: list[bytes | bytearray]

    @classmethod
    def of(cls, parts: list[Any], kinds: list[int] | None) -> Loaded:
        """The object `read_parts` read as `parts` and `kinds`."""
        if kinds is None:
            return cls(parts[0], [], [])
        found = list(zip(parts[2:], kinds, strict=True))
        return cls(parts[1], [p for p, k in found if k in (BYTES, BYTEARRAY)],
                   [p for p, k in found if k in (BUFFER, WRITABLE_BUFFER)])


def read_parts(path: Path, size: int) -> tuple[list[Any], list[int] | None]:
    """The parts of the regular file `path` of `size` bytes, each read once into an object of
    its own (never through a symlink, never blocking on a FIFO): [whole] for a pickle stream;
    [header, stream, pieces...] and the pieces' kinds for a `Pickled`. OSError, or ValueError
    when its length or its header does not agree with `size`."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb", buffering=0) as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if st.st_size != size:
            raise ValueError(f"it holds {st.st_size:,} bytes where {size:,} were stored")
        start = os.pread(fd, header_size(0), 0)
        if not start.startswith(MAGIC) or len(start) < header_size(0):
            return [_exactly(f, size, bytes)], None
        length = header_size(int.from_bytes(start[len(MAGIC):], "little"))
        if length > size:
            raise ValueError("its header is longer than the file")
        header = _exactly(f, length, bytes)
        found = parse_header(header) or []
        stream = size - length - sum(n for _, n in found)
        if stream < 0 or any(kind not in KINDS for kind, _ in found):
            raise ValueError("its header does not describe its bytes")
        parts = [header, _exactly(f, stream, bytes)]
        for kind, n in found:
            parts.append(_exactly(f, n, bytearray if kind in (BYTEARRAY, WRITABLE_BUFFER)
                                  else bytes))
        return parts, [kind for kind, _ in found]


def _exactly(f: Any, n: int, kind: type) -> Any:
    """The next `n` bytes of the unbuffered file `f` as a new `kind` (bytes: read straight
    into it, one copy); ValueError if the file ends first."""
    if kind is bytes:
        data = f.read(n)
        if len(data) == n:
            return data
        chunks = [data]
        while (got := sum(map(len, chunks))) < n:
            chunk = f.read(n - got)
            if not chunk:
                raise ValueError("it is shorter than its size")
            chunks.append(chunk)
        return b"".join(chunks)
    data = bytearray(n)
    view = memoryview(data)
    while view:
        got = f.readinto(view)
        if not got:
            raise ValueError("it is shorter than its size")
        view = view[got:]
    return data
