"""How fntree puts files on disk: durably, and for its owner's eyes only.

Durable: every whole-file write in the job store goes through `atomic_write`
(temp file, flush, fsync, rename, fsync dir); appends go through
`fntree.runtime.journal`. A reader sees the old file or the new one, never a
mix, and once `atomic_write` returns the new one survives a power cut.

Private, under any umask: the owner-only helpers of `fntree.private`
(`make_private_dir`, `open_private`, `check_shared_dir`) are re-exported here;
`atomic_write` creates its files 0600.

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
from fntree.private import (
    PRIVATE_DIR,
    PRIVATE_FILE,
    check_shared_dir,
    make_private_dir,
    open_private,
)
from fntree.runtime import crashpoints

__all__ = ["HEADER", "PRIVATE_DIR", "PRIVATE_FILE", "SEALED", "DamagedFile", "atomic_write",
           "check_shared_dir", "frame_header", "fsync_dir", "make_private_dir", "open_private",
           "parse_header", "read_sealed", "seal", "unseal"]



def fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600, crash: str | None = None) -> None:
    """Replace `path` with `data`, atomically and durably.

    The temp file's name is unique to this call (process, and a random part for
    threads), so concurrent writers of one path never share one. `crash` names
    crash points (fntree/runtime/crashpoints.py): `<crash>.write`, half of the
    temp file written; `<crash>.rename`, renamed, the directory not yet synced.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        try:
            view = memoryview(data)
            if crash is not None and crashpoints.reached(f"{crash}.write"):
                os.write(fd, view[: len(view) // 2])
                crashpoints.die()
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if crash is not None:
        crashpoints.point(f"{crash}.rename")
    fsync_dir(path.parent)
