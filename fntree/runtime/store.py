"""`JobStore`: creating, validating, locking and recovering a job store directory.

The layout and the order of writes are in docs/jobstore.md. Recovery is one
function of the directory, `JobStore.recover`, run by every leader at start: it
loads the newest snapshot, replays the journal segments after it through
`state.apply`, cuts a torn tail, and removes what older snapshots left behind.

The leader's lock is an flock on `leader.lock`. Readers probe it by taking it
shared for an instant, so `lock` tries again for a moment before refusing: a
reader never makes a leader refuse (docs/jobstore.md).
"""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from fntree.errors import JobStoreError, LeaderRunningError
from fntree.runtime import crashpoints
from fntree.runtime.durable import atomic_write, fsync_dir, make_private_dir
from fntree.runtime.journal import DamagedJournal, Journal, read_records, write_error
from fntree.runtime.paths import StorePaths
from fntree.runtime.records import R_ROOT, Spec
from fntree.runtime.state import RunState, apply

PROGRAM = "fntree"
FORMAT = 1
# How long a would-be leader tries for the lock before refusing (readers hold it
# shared for microseconds), and how often.
LOCK_PATIENCE = 2.0
LOCK_RETRY = 0.005


class JobStore:
    """A job store directory; `open` or `create` it, then `lock` it to lead."""

    def __init__(self, paths: StorePaths, meta: dict[str, Any]) -> None:
        self.paths = paths
        self.meta = meta
        self._lock_fd = -1

    @property
    def store_id(self) -> str:
        return str(self.meta["store_id"])

    # -- creation and validation ------------------------------------------------------
    @classmethod
    def create(cls, root: str | os.PathLike[str], root_spec: Spec, fns: dict[bytes, bytes],
               config: dict[str, Any]) -> JobStore:
        """Make a new job store holding the run's first job; an existing path is refused."""
        paths = StorePaths(root)
        _make_root(paths.root)
        os.chmod(paths.root, 0o700)
        meta = {"program": PROGRAM, "format": FORMAT, "store_id": uuid.uuid4().hex[:16],
                "created": time.time()}
        try:
            atomic_write(paths.meta, json.dumps(meta, indent=1).encode())
            crashpoints.point("store.create")
            atomic_write(paths.config, pickle.dumps(config, pickle.HIGHEST_PROTOCOL))
            # Made now, so that no leader needs a new inode to take the lock later.
            os.close(os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600))
            make_private_dir(paths.journal_dir)
            journal = Journal.open(paths.segment(1))
            journal.append((R_ROOT, root_spec, fns))
            journal.commit()
            journal.close()
            fsync_dir(paths.journal_dir)
        except OSError as exc:
            shutil.rmtree(paths.root, ignore_errors=True)
            raise JobStoreError(f"cannot create job store {paths.root} ({exc}); nothing ran and "
                                "nothing was kept: fix the cause and run again") from exc
        return cls(paths, meta)

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> JobStore:
        """An existing job store, checked to be fntree's, readable by us and safe to load."""
        paths = StorePaths(root)
        if not paths.root.is_dir():
            raise JobStoreError(f"there is no job store at {paths.root}; check the path, "
                                "or start a run there with fntree.run(..., jobstore=PATH)")
        if not paths.meta.is_file():
            raise JobStoreError(f"{paths.root} is not an fntree job store (it has no "
                                f"{paths.meta.name}); check the path")
        try:
            meta = json.loads(paths.meta.read_text())
        except (OSError, ValueError) as exc:
            raise JobStoreError(f"{paths.meta} is damaged ({exc}); the job store cannot be "
                                "used") from exc
        if not isinstance(meta, dict) or meta.get("program") != PROGRAM:
            raise JobStoreError(f"{paths.root} belongs to another program, not fntree; "
                                "check the path")
        if not isinstance(meta.get("format"), int) or meta["format"] > FORMAT:
            raise JobStoreError(
                f"{paths.root} was written by a newer fntree (store format "
                f"{meta.get('format')}, this fntree reads up to {FORMAT}); upgrade fntree")
        _check_safe(paths.root)
        return cls(paths, meta)

    def config(self) -> dict[str, Any]:
        if not self.paths.config.exists():
            raise JobStoreError(f"{self.paths.root} has no {self.paths.config.name}: its "
                                "creation was interrupted before anything ran; remove it and "
                                "run again")
        try:
            with open(self.paths.config, "rb") as f:
                config: dict[str, Any] = pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError) as exc:
            raise JobStoreError(f"{self.paths.config} cannot be read ({exc}); the job store "
                                "is damaged") from exc
        return config

    # -- the leader's lock ----------------------------------------------------------
    def lock(self, *, patience: float = LOCK_PATIENCE) -> None:
        """Become this store's one leader, or raise LeaderRunningError.

        Readers (`leader_alive`) probe the lock by taking it shared for an instant,
        so a conflict may be one of them: the lock is tried again for `patience`
        seconds before a leader is believed to hold it (a leader holds it for its
        whole run). So readers never make a leader, or `fntree clean`, refuse.
        """
        try:
            fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise JobStoreError(
                f"cannot open the leader's lock file {self.paths.lock} ({exc}); if the disk "
                "holding the job store is full or out of inodes (`df -h`, `df -i`), free "
                "some and try again") from None
        deadline = time.monotonic() + patience
        while not _try_lock(fd, fcntl.LOCK_EX):
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
                os.close(fd)
                raise LeaderRunningError(
                    f"job store {self.paths.root} is in use by a leader or by `fntree clean` "
                    f"({holder or 'another process'}); wait for it to finish, or stop a "
                    f"leader with `fntree kill {self.paths.root}`")
            time.sleep(LOCK_RETRY)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        except OSError:
            pass  # who holds the lock is for people; a full disk must not stop the leader
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def leader_alive(self) -> str | None:
        """Who holds the leader's lock right now, or None."""
        try:
            fd = os.open(self.paths.lock, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            if _try_lock(fd, fcntl.LOCK_SH):
                return None  # closing fd releases the probe at once
            return os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
        finally:
            os.close(fd)

    # -- recovery and compaction ----------------------------------------------------
    def _segments(self) -> tuple[int, list[int]]:
        snapshots, segments = [], []
        for entry in os.listdir(self.paths.journal_dir):
            stem, _, ext = entry.partition(".")
            if stem == "snapshot" and ext.isdigit():
                snapshots.append(int(ext))
            elif ext == "log" and stem.isdigit():
                segments.append(int(stem))
        base = max(snapshots, default=0)
        return base, sorted(s for s in segments if s >= base)

    def recover(self, *, repair: bool) -> tuple[RunState, int, int]:
        """(state, last segment, its good length) rebuilt from the directory.

        With `repair` (the leader, holding the lock) stale snapshots and segments
        are deleted; without it (status readers) nothing is changed.
        """
        base, segments = self._segments()
        state = RunState()
        if base:
            try:
                state = pickle.loads(self.paths.snapshot(base).read_bytes())
            except Exception as exc:
                raise JobStoreError(f"{self.paths.snapshot(base)} is damaged ({exc}); the "
                                    "job store cannot be recovered") from exc
        if not segments:
            segments = [max(base, 1)]
            if not base:
                raise JobStoreError(f"{self.paths.root} has no journal: its creation was "
                                    "interrupted before anything ran; remove it and run again")
        good = 0
        for number in segments:
            path = self.paths.segment(number)
            if not path.exists():
                good = 0
                continue
            try:
                records, good, torn = read_records(path)
            except DamagedJournal as exc:
                raise JobStoreError(f"journal segment {exc}; the job store cannot be "
                                    "recovered exactly (`fntree check` says more)") from exc
            if torn and number != segments[-1]:
                raise JobStoreError(f"journal segment {path} is damaged in the middle; "
                                    "the job store cannot be recovered exactly")
            try:
                for record in records:
                    apply(state, record)
            except (KeyError, IndexError, ValueError, TypeError) as exc:
                raise JobStoreError(f"journal segment {path} holds a record that does not "
                                    f"fit the run ({type(exc).__name__}: {exc}); the job "
                                    "store is damaged") from exc
        if state.root is None:
            raise JobStoreError(f"{self.paths.root} has no root job: its creation was "
                                "interrupted before anything ran; remove it and run again")
        state.to_clean.clear()
        if repair:
            self._remove_stale(base)
        return state, segments[-1], good

    def _remove_stale(self, base: int) -> None:
        for entry in os.listdir(self.paths.journal_dir):
            stem, _, ext = entry.partition(".")
            number = ext if stem == "snapshot" else stem
            stale = number.isdigit() and int(number) < base
            if stale or (entry.startswith(".") and entry.endswith(".tmp")):
                os.unlink(self.paths.journal_dir / entry)

    def open_journal(self, segment: int, good_size: int) -> Journal:
        return Journal.open(self.paths.segment(segment), good_size)

    def compact(self, state: RunState, journal: Journal, segment: int) -> tuple[Journal, int]:
        """Write the live state as a snapshot and continue in a new, empty segment."""
        journal.commit()
        nxt = segment + 1
        state.to_clean, pending = [], state.to_clean
        try:
            atomic_write(self.paths.snapshot(nxt), pickle.dumps(state, pickle.HIGHEST_PROTOCOL))
        except OSError as exc:
            raise write_error(self.paths.snapshot(nxt), exc) from exc
        finally:
            state.to_clean = pending
        crashpoints.point("compact.snapshot")
        try:
            new = Journal.open(self.paths.segment(nxt))
        except OSError as exc:
            raise write_error(self.paths.segment(nxt), exc) from exc
        fsync_dir(self.paths.journal_dir)
        journal.close()
        crashpoints.point("compact.segment")
        self._remove_stale(nxt)
        return new, nxt

    def sweep_global_temp_dirs(self, live: dict[int, Any]) -> None:
        """Remove global temp dirs whose chain is no longer live."""
        root = self.paths.global_tmp
        if not root.is_dir():
            return
        for entry in os.listdir(root):
            try:
                alive = int(entry, 16) in live
            except ValueError:
                alive = False
            if not alive:
                shutil.rmtree(root / entry, ignore_errors=True)


def _try_lock(fd: int, kind: int) -> bool:
    """Take the flock `kind` on `fd` if no one holds a conflicting one; never wait."""
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _make_root(root: Path) -> None:
    """Make the new store's directory (and its missing parents), or say why it cannot be."""
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        root.mkdir(mode=0o700)
        return
    except (FileExistsError, NotADirectoryError):
        pass
    except OSError as exc:
        raise JobStoreError(f"cannot create the job store directory {root} ({exc}); choose a "
                            "path in a directory you may write to (and, if the disk is full "
                            "or out of inodes, free some)") from None
    if os.path.lexists(root):
        raise JobStoreError(
            f"job store {root} already exists; continue that run with "
            f"fntree.restart({str(root)!r}) (or `fntree restart {root}`), "
            "or choose a new path")
    blocker = next((p for p in root.parents if os.path.lexists(p) and not p.is_dir()),
                   root.parent)
    raise JobStoreError(f"cannot create the job store {root}: {blocker} is a file, not a "
                        "directory; choose another path")


def _check_safe(root: Path) -> None:
    """Refuse a store that another user owns or others can write: it holds pickles."""
    st = root.stat()
    if st.st_uid != os.getuid():
        raise JobStoreError(f"job store {root} belongs to another user (uid {st.st_uid}); it "
                            "holds pickled code, so fntree only loads its owner's stores")
    if st.st_mode & 0o022:
        raise JobStoreError(f"job store {root} is writable by others (mode "
                            f"{st.st_mode & 0o777:o}); it holds pickled code: run "
                            f"`chmod go-w {root}` if you trust its contents")
