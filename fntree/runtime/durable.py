"""The one way fntree makes a file durable, and the one way it checksums one.

Every whole-file write in the job store goes through `atomic_write` (temp file,
flush, fsync, rename, fsync of the directory); appends go through
`fntree.runtime.journal`. A reader sees the old file or the new one, never a
mix, and once `atomic_write` returns the new one survives a power cut.

Every byte that decides a result is checksummed by `fntree.checksum`
(re-exported here): journal frames, snapshots, config.pkl and the Slurm batch
system's packets and results.
"""

from __future__ import annotations

import os
from pathlib import Path

from fntree.checksum import (
    HEADER,
    SEALED,
    DamagedFile,
    frame_header,
    parse_header,
    read_sealed,
    seal,
    unseal,
)

__all__ = ["HEADER", "SEALED", "DamagedFile", "atomic_write", "frame_header", "fsync_dir",
           "make_private_dir", "parse_header", "read_sealed", "seal", "unseal"]


def fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data`, atomically and durably."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def make_private_dir(path: Path) -> None:
    """Create `path` (and missing parents) readable by its owner only."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
