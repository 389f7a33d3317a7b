"""Checksums for the job store's files: one self-checking header for every checksummed body.

Every byte that decides a result is checksummed, with one header format
(`frame_header`), used by journal frames and by whole files (`seal`/`unseal`):

    magic (4 bytes) | u64 body length | u32 crc32(body) | u32 crc32(the 16 bytes before)

all little-endian. The header checks itself, so a damaged length is never
trusted; the body's crc32 detects every single-bit flip and every burst of up
to 32 bits. Sealed files (snapshots, config.pkl, the Slurm batch system's
packets and results) are verified before they are unpickled: a mismatch raises
`DamagedFile`, naming the file and what to do, never a wrong value.

It sits beside `fntree.errors`, below every layer, so that the runtime's files
(journal frames, snapshots, config.pkl) and the Slurm batch system's files use
the same code; `fntree.runtime.durable` re-exports it.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from fntree.errors import JobStoreError

HEADER = struct.Struct("<4sQII")
_FIELDS = struct.Struct("<4sQI")
SEALED = b"FNs\x02"  # the magic of a sealed whole file


class DamagedFile(JobStoreError):
    """A checksummed file of the job store does not match its checksum."""

    def __init__(self, path: Path, what: str, remedy: str) -> None:
        super().__init__(f"{path} is damaged ({what}); {remedy}")
        self.path = path


def frame_header(magic: bytes, body: bytes | memoryview) -> bytes:
    """The self-checking header that precedes `body`."""
    fields = _FIELDS.pack(magic, len(body), zlib.crc32(body))
    return fields + struct.pack("<I", zlib.crc32(fields))


def parse_header(data: bytes | memoryview, offset: int, magic: bytes) -> tuple[int, int] | None:
    """(body length, body crc) of the complete header at `offset`, or None if it does not check."""
    found, length, crc, check = HEADER.unpack_from(data, offset)
    if found != magic or zlib.crc32(data[offset:offset + _FIELDS.size]) != check:
        return None
    return length, crc


def seal(body: bytes) -> bytes:
    """`body` behind a checksummed header, for `unseal` to verify."""
    return frame_header(SEALED, body) + body


def unseal(path: Path, data: bytes, remedy: str) -> memoryview:
    """The body of sealed `data` read from `path`; DamagedFile unless every byte checks."""
    if len(data) < HEADER.size:
        raise DamagedFile(path, f"it is {len(data)} bytes long, shorter than its header", remedy)
    header = parse_header(data, 0, SEALED)
    if header is None:
        raise DamagedFile(path, "its header does not match its checksum", remedy)
    length, crc = header
    body = memoryview(data)[HEADER.size:]
    if length != len(body):
        raise DamagedFile(path, f"it holds {len(body)} bytes after its header where "
                                f"{length} were written", remedy)
    if zlib.crc32(body) != crc:
        raise DamagedFile(path, "its contents do not match their checksum", remedy)
    return body


def read_sealed(path: Path, remedy: str) -> memoryview:
    """The verified body of the sealed file at `path` (FileNotFoundError if it is gone)."""
    return unseal(path, path.read_bytes(), remedy)
