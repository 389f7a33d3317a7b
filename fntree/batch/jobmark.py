"""`JobMark`: which job a worker is running, in a tiny file read when the worker dies.

A worker rewrites one fixed-size record in `<its local dir>/job` as each job
starts, chained follow-ons included, and zeroes it after each packet:
`u64 job id | u64 chain id | u32 attempt | u8 chained | 128 bytes of name`. The
file is mapped into the worker's memory, so a mark is a store to memory, not a
system call (a write to a file costs 5 to 100 us on a busy disk); no fsync: the
leader reads it on this machine, from the page cache, while the file is there.
When a worker dies, the batch system reads it (`read_mark`) and reports the job
as `Update.running`, so the leader charges the job that was running, not the
one it handed out (a chained follow-on runs under its predecessor's packet), and
puts the dead worker's output in that job's log. No file, or a torn record, reads as None: unknown.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import NamedTuple

_RECORD = struct.Struct("<QQIB128s")


class Running(NamedTuple):
    """The job a worker was running: ids, attempt, whether chained, its target's name."""

    job_id: int
    chain_id: int
    attempt: int
    chained: bool
    name: str


class JobMark:
    """The writer's side: one open file in a worker's local dir."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, _RECORD.size)
            self._map = mmap.mmap(fd, _RECORD.size)
        finally:
            os.close(fd)

    def set(self, job_id: int, chain_id: int, attempt: int, chained: bool, name: str) -> None:
        _RECORD.pack_into(self._map, 0, job_id, chain_id, attempt, chained, name.encode()[:128])

    def clear(self) -> None:
        """No job running (between packets)."""
        _RECORD.pack_into(self._map, 0, 0, 0, 0, False, b"")

    def close(self) -> None:
        self._map.close()


def mark_path(local_dir: Path) -> Path:
    return local_dir / "job"


def boot_failure(local_dir: Path, stderr: bytes) -> str:
    """How to finish "its worker process exited ..." for a worker that never booted, or "".

    A worker makes its mark file as it boots: without one it never got to run a job,
    and the last line of its stderr says why (an import error, a bad interpreter).
    """
    if mark_path(local_dir).exists():
        return ""
    lines = stderr.decode(errors="replace").strip().splitlines()
    said = f"; its stderr ends: {lines[-1].strip()}" if lines else ", and wrote nothing"
    return f" before it could run a job{said}"


def read_mark(local_dir: Path) -> Running | None:
    """The job the worker whose local dir is `local_dir` was running last, if known."""
    try:
        data = mark_path(local_dir).read_bytes()
    except OSError:
        return None
    if len(data) != _RECORD.size:
        return None
    job_id, chain_id, attempt, chained, name = _RECORD.unpack(data)
    if not job_id:
        return None
    return Running(job_id, chain_id, attempt, bool(chained),
                   name.rstrip(b"\0").decode(errors="replace"))
