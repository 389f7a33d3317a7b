"""`fntree logs -f DIR [JOB]`: follow a running job's output, or the run's messages.

What it reads (docs/logs.md), the same on every batch system, since both live in
the job store:

- a running job's output: `logs/live/<job>.log`, which the job's worker extends
  every half second (fntree.runtime.live), opening with the attempt's header. When
  the job ends its worker appends the attempt to the kept log `logs/<hh>/<job>.log`,
  then removes the live file. Following prints the live file as it grows, then the
  rest of the attempt from the kept log, and ends. A job named that is running but
  has no live file yet (it started less than a second ago) is waited for.
- the run's messages: the leader's event log, its `message` lines, followed
  across the log's rotation into parts (fntree.cli.messages).

Either ends when there is no more to come: the job ended, or no leader holds the
store (`JobStore.leader_alive`, looked at every `LOOK_EVERY` seconds).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fntree.errors import FntreeError, JobStoreError
from fntree.runtime.records import job_hex
from fntree.runtime.state import RunState
from fntree.runtime.store import JobStore

POLL = 0.25        # seconds between two reads of a file that did not grow
LOOK_EVERY = 2.0   # seconds between two looks for a leader (and, waiting, at the state)
PATIENCE = 5.0     # seconds to wait for the kept log once the live file is gone
CUT_MARK = b"[... fntree: the live copy stops at "

Write = Callable[[bytes], None]


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def follow_job(store: JobStore, state: RunState, text: str, write: Write = _write) -> int:
    """Follow the running job `text` names (an id, a prefix of one, or a target's name)."""
    live = _live_file(store, text)
    if live is None:
        job_id = _running_job(state, text)
        if job_id is None:
            return -1  # not running: the caller shows its kept log
        live = _wait_for_live(store, job_id)
        if live is None:
            write(f"[fntree logs: job {job_hex(job_id)} ended before it had run a second; "
                  f"`fntree logs {store.paths.root} {job_hex(job_id)}` shows its kept log]\n"
                  .encode())
            return 0
    return _follow_live(store, live, write)


def _live_file(store: JobStore, text: str) -> Path | None:
    key = text.lower()
    if not key or any(ch not in "0123456789abcdef" for ch in key):
        return None
    found = sorted(store.paths.live_dir.glob(f"{key}*.log"))
    if len(found) > 1:
        raise FntreeError(f"{text!r} is the start of {len(found)} running jobs' ids ("
                          f"{', '.join(p.stem for p in found[:5])}); give more of the id")
    return found[0] if found else None


def _running_job(state: RunState, text: str) -> int | None:
    """The id of the one running job `text` names, by id prefix or target name."""
    key = text.lower()
    jobs = [c.job for c in (state.chains[cid] for cid in state.running) if c.job is not None]
    named = [j.job_id for j in jobs if job_hex(j.job_id).startswith(key) or j.name == text]
    if len(named) > 1:
        raise FntreeError(f"{text!r} names {len(named)} running jobs ("
                          f"{', '.join(job_hex(j) for j in named[:5])}); give one's id")
    return named[0] if named else None


def _wait_for_live(store: JobStore, job_id: int, clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> Path | None:
    """The job's live file once it exists; None if the job stops running first."""
    path = store.paths.live(job_id)
    looked = clock()
    while not path.exists():
        if clock() - looked > LOOK_EVERY:
            looked = clock()
            state, _, _ = store.recover(repair=False)
            chain = state.chain_of_job(job_id)
            if (store.leader_alive() is None or chain is None
                    or chain.chain_id not in state.running):
                return path if path.exists() else None
        sleep(POLL)
    return path


def _follow_live(store: JobStore, path: Path, write: Write,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> int:
    """Print the live file as it grows; when it is gone, the rest from the kept log."""
    try:  # O_NONBLOCK: a FIFO in its place is refused below, never waited on
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:  # it ended between the look and now
        return _rest_from_kept(store, path, b"", 0, write)
    except OSError as exc:
        raise _not_a_live_file(store, path, exc.strerror or str(exc)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_a_live_file(store, path, "not a regular file")
    first, printed, looked, cut = b"", 0, clock(), False
    try:
        while True:
            data = os.read(fd, 1 << 20)
            if data:
                write(data)
                cut = cut or CUT_MARK in data
                if b"\n" not in first:
                    first += data[:max(0, 4096 - len(first))]
                printed += len(data)
                continue
            if _gone(path, fd):
                while data := os.read(fd, 1 << 20):  # what came before it was removed
                    write(data)
                    printed += len(data)
                break
            if clock() - looked > LOOK_EVERY:
                looked = clock()
                if store.leader_alive() is None and not _gone(path, fd):
                    write(f"[fntree logs: no leader is running {store.paths.root}; the job's "
                          "output stops here until the run is restarted]\n".encode())
                    return 0
            sleep(POLL)
    finally:
        os.close(fd)
    return _rest_from_kept(store, path, first.split(b"\n", 1)[0] + b"\n", printed, write, cut)


def _not_a_live_file(store: JobStore, path: Path, why: str) -> JobStoreError:
    return JobStoreError(f"the live log {path} cannot be followed ({why}): workers write it "
                         "as a regular file, so something else was put in its place; remove "
                         f"it, and read the job's kept log with `fntree logs {store.paths.root} "
                         f"{path.stem}` once it ends")


def _gone(path: Path, fd: int) -> bool:
    """Whether the live file open on `fd` was removed (or replaced by a later attempt's)."""
    try:
        return os.stat(path, follow_symlinks=False).st_ino != os.fstat(fd).st_ino
    except FileNotFoundError:
        return True


def _rest_from_kept(store: JobStore, live: Path, header: bytes, printed: int, write: Write,
                    cut: bool = False, clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> int:
    """The attempt's output past the `printed` bytes the live file showed, from the kept log."""
    job = live.stem
    kept = store.paths.log(int(job, 16))
    deadline = clock() + PATIENCE
    while True:
        with contextlib.suppress(OSError):
            text = kept.read_bytes()
            at = text.rfind(header) if header.strip() else -1
            if at >= 0 and cut:
                break  # the live copy was cut: the kept log has other bytes at its offsets
            if at >= 0:
                write(text[at + printed:])  # the same bytes, up to `printed`
                return 0
        if printed <= len(header) and header.strip():
            return 0  # silent, and its worker kept no log: it succeeded printing nothing
        if clock() > deadline:  # the worker died: the leader keeps its log, or did not
            break
        sleep(POLL)
    shown = (f"; `fntree logs {store.paths.root} {job}` shows its kept log" if kept.exists()
             else "")
    write(f"[fntree logs: job {job} ended{shown}]\n".encode())
    return 0
