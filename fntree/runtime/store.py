"""`JobStore`: creating, validating, locking and recovering a job store directory.

The layout, the checksums and the order of writes are in docs/jobstore.md.
Recovery is one function of the directory, `JobStore.replay`, run by every
leader at start: it loads the newest snapshot (sealed: verified before it is
unpickled), replays the journal segments after it through `state.apply`, and
reports a torn tail, which the leader cuts, and removes what older snapshots
left behind. Damage (a frame or file that does not check, a missing snapshot or
segment that later records depend on) is an error naming the file and what to
do; nothing is cut or removed then.

Readers (`repair=False`) hold no lock: when a compaction changes the files
under them they list and read again, a bounded number of times. When the
leader compacts, the order of its writes and the bounds that keep the journal
(and so a restart's replay) as long as the live state are in
fntree/runtime/compaction.py; recovery tells it the loaded snapshot's size.
`create` writes the root's long arguments out of line (fntree/runtime/objects.py)
before the `ROOT` record.

`fntree.json` carries a crc32 of its fields (fntree/runtime/meta.py);
`config.pkl` and snapshots are sealed (`fntree.checksum`).

`JobStore.open` refuses a store that is not its owner's alone, all the way
down (`access.check_store_tree`), before anything in it is unpickled, and gives
a copied store its own identity (`access.own_identity`) before anything shared
with the original is touched.

The leader's lock is an flock on `leader.lock`. Readers probe it by taking it
shared for an instant, so `lock` tries again for a moment before refusing: a
reader never makes a leader refuse (docs/jobstore.md).
"""

from __future__ import annotations

import fcntl
import os
import pickle
import shutil
import socket
import time
from pathlib import Path
from typing import Any, NamedTuple

from fntree.errors import JobStoreError, LeaderRunningError
from fntree.runtime import crashpoints
from fntree.runtime.access import (
    check_store_tree,
    identity_of,
    new_store_id,
    own_identity,
)
from fntree.runtime.compaction import Compaction, compact, remove_older
from fntree.runtime.durable import (
    atomic_write,
    fsync_dir,
    make_private_dir,
    read_sealed,
    seal,
)
from fntree.runtime.journal import DamagedJournal, Journal, read_records, write_error
from fntree.runtime.lineage import check_origin, lost_segment_text
from fntree.runtime.meta import FORMAT, PROGRAM, meta_bytes, read_meta, upgraded
from fntree.runtime.objects import ObjectStore, out_of_line_spec
from fntree.runtime.paths import StorePaths
from fntree.runtime.records import R_ROOT, R_SEGMENT, R_TARGETS, Spec
from fntree.runtime.root import make_root, no_root_text
from fntree.runtime.state import RunState, apply

READ_TRIES = 20  # times a reader lists and rereads a store that a compaction is changing


class Replay(NamedTuple):
    """What recovery rebuilt: the state, the last segment, its good length and torn tail."""

    state: RunState
    segment: int
    good: int
    torn: int
    base: int


class _Gap(Exception):
    """The listed snapshot and segments do not follow on (a compaction moved on, or loss)."""


def _as_error(exc: Exception) -> JobStoreError:
    return exc if isinstance(exc, JobStoreError) else JobStoreError(str(exc))
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
        self.quiet = 0.0  # when the leader last had no job running (objects.collect_now)
        self.compaction = Compaction()  # when to compact (fntree/runtime/compaction.py)
        # Named by its segments and snapshots, kept by copies (None: made before lineages).
        self.lineage: str | None = meta.get("lineage")

    @property
    def store_id(self) -> str:
        return str(self.meta["store_id"])

    # -- creation and validation ------------------------------------------------------
    @classmethod
    def create(cls, root: str | os.PathLike[str], root_spec: Spec, fns: dict[bytes, bytes],
               config: dict[str, Any], targets: dict[bytes, Any] | None = None) -> JobStore:
        """Make a new job store holding the run's first job; an existing path is refused
        unless it is an empty directory (fntree/runtime/root.py).

        `targets` are the identities of `fns` (a TARGETS record beside ROOT).
        """
        paths = StorePaths(root)
        make_root(paths.root)
        os.chmod(paths.root, 0o700)
        store_id = new_store_id()
        meta = {"program": PROGRAM, "format": FORMAT, "store_id": store_id,
                "lineage": store_id, "created": time.time(), "root": identity_of(paths.root)}
        store = cls(paths, meta)
        try:
            atomic_write(paths.meta, meta_bytes(meta))
            crashpoints.point("store.create")
            atomic_write(paths.config, seal(pickle.dumps(config, pickle.HIGHEST_PROTOCOL)))
            # Made now, so that no leader needs a new inode to take the lock later.
            os.close(os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600))
            # The root's long arguments before journal/ exists: a store cut off while they
            # are written is then an interrupted creation (fntree/runtime/root.py, `_ran`).
            root_spec = out_of_line_spec(root_spec, ObjectStore(paths.objects))  # before ROOT
            make_private_dir(paths.journal_dir)
            journal = store.new_segment(1)
            journal.append((R_ROOT, root_spec, fns))
            if targets:
                journal.append((R_TARGETS, targets))
            journal.commit()
            journal.close()
            fsync_dir(paths.journal_dir)
        except OSError as exc:
            shutil.rmtree(paths.root, ignore_errors=True)
            raise JobStoreError(f"cannot create job store {paths.root} ({exc}); nothing ran and "
                                "nothing was kept: fix the cause and run again") from exc
        return store

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
        meta = read_meta(paths)
        check_store_tree(paths.root)  # before anything in it is unpickled
        return cls(paths, own_identity(paths, meta))  # a copy gets its own, before any use

    def config(self) -> dict[str, Any]:
        """The run's options and recorded environment, verified against their checksum."""
        path = self.paths.config
        remedy = "it holds the run's options and environment: restore it from a backup"
        if not path.exists():
            if self._segments() != (0, []):
                raise JobStoreError(f"{path} is missing although the journal holds the run's "
                                    f"records: the run's record is incomplete. The store is "
                                    f"kept as it is; {remedy}")
            raise JobStoreError(f"{self.paths.root} has no {path.name}: its creation was "
                                "interrupted before anything ran; remove it and run again")
        try:
            config: dict[str, Any] = pickle.loads(read_sealed(path, remedy))
        except JobStoreError:
            raise
        except Exception as exc:
            raise JobStoreError(f"{path} checks but does not load ({type(exc).__name__}: "
                                f"{exc}); {remedy}") from exc
        return config

    def write_config(self, config: dict[str, Any]) -> None:
        """Replace the recorded config, atomically (a restart's change of environment)."""
        try:
            atomic_write(self.paths.config, seal(pickle.dumps(config, pickle.HIGHEST_PROTOCOL)))
        except OSError as exc:
            raise JobStoreError(f"cannot write {self.paths.config} ({exc}); nothing was "
                                "changed: fix the cause and restart again") from exc

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
                f"cannot open the leader's lock file {self.paths.lock} ({exc}); if it is not "
                "a file (no leader runs now), remove it; if the disk holding the job store is "
                "full or out of inodes (`df -h`, `df -i`), free some; then try again") from None
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
        try:
            entries = os.listdir(self.paths.journal_dir)
        except FileNotFoundError:
            entries = []
        for entry in entries:
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
        replay = self.replay(repair=repair)
        return replay.state, replay.segment, replay.good

    def replay(self, *, repair: bool) -> Replay:
        """The state rebuilt from the newest snapshot and the segments after it.

        A reader (`repair=False`) holds no lock, so a compaction may replace the
        snapshot and remove segments while it reads: when a file it listed has
        vanished, or the files do not follow on, it lists again and rereads, a
        bounded number of times. A damaged frame is reread once as well: a
        leader cutting a torn tail can make a reader see a mix of two writes.
        """
        if repair:
            try:
                replay = self._replay_once(self._segments())
            except _Gap as exc:
                raise JobStoreError(str(exc)) from None
            self._make_segment(replay.segment)  # before older files go: see _replay_once
            remove_older(self, replay.base)
            if replay.base:  # the next compaction waits for a segment as long as it
                self.compaction.saw(self.paths.snapshot(replay.base).stat().st_size,
                                    len(replay.state.chains))
            return replay
        failure: Exception | None = None
        for attempt in range(READ_TRIES):
            listing = self._segments()
            try:
                return self._replay_once(listing)
            except (FileNotFoundError, _Gap, JobStoreError) as exc:
                if failure is not None and self._segments() == listing \
                        and not isinstance(exc, FileNotFoundError):
                    raise _as_error(exc) from exc
                failure = exc
            time.sleep(0.005 * attempt)
        raise JobStoreError(f"job store {self.paths.root} kept changing while it was read "
                            f"({failure}); a leader is compacting it: try again") from failure

    def _replay_once(self, listing: tuple[int, list[int]]) -> Replay:
        base, segments = listing
        first = max(base, 1)
        if segments != list(range(first, first + len(segments))):
            raise _Gap(self._missing(base, segments))
        state = self._load_snapshot(base) if base else RunState()
        state.objects = ObjectStore(self.paths.objects)  # (unborn children it spilled)
        if not segments:
            if not base:
                raise JobStoreError(no_root_text(self.paths, "no journal"))
            segments = [base]
        good, torn = 0, 0
        for number in segments:
            path = self.paths.segment(number)
            if number == base and not path.exists():
                if not self._older_than(base):  # made before them, so it was deleted
                    raise JobStoreError(lost_segment_text(self.paths, base))
                continue  # a crash between writing snapshot.K and making K.log
            try:
                records, good, cut = read_records(path)
            except DamagedJournal as exc:
                raise JobStoreError(self._damaged(exc, last=number == segments[-1])) from exc
            if records and records[0][0] == R_SEGMENT:
                check_origin(records[0][1:3], self.lineage, number, path)
            torn = path.stat().st_size - good if cut else 0
            if cut and number != segments[-1]:
                raise JobStoreError(f"journal segment {path} ends in a torn frame at byte "
                                    f"{good} although later segments follow; the job store "
                                    "cannot be recovered exactly: restore the journal from a "
                                    "backup")
            self._apply(state, records, path)
        if state.root is None:
            raise JobStoreError(no_root_text(self.paths, "no root job"))
        state.to_clean.clear()
        return Replay(state, segments[-1], good, torn, base)

    def _make_segment(self, number: int) -> None:
        """Create segment `number` if a crash left its snapshot without it."""
        path = self.paths.segment(number)
        if not path.exists():
            try:
                journal = self.new_segment(number)
                journal.commit()
                journal.close()
                fsync_dir(self.paths.journal_dir)
            except OSError as exc:
                raise write_error(path, exc) from exc

    def _older_than(self, base: int) -> bool:
        """Whether a segment or snapshot older than snapshot `base` is still there."""
        return any((stem == "snapshot" and ext.isdigit() and int(ext) < base)
                   or (ext == "log" and stem.isdigit() and int(stem) < base)
                   for stem, _, ext in (e.partition(".") for e in
                                        os.listdir(self.paths.journal_dir)))

    def _damaged(self, exc: DamagedJournal, *, last: bool) -> str:
        text = (f"journal segment {exc}. fntree does not cut it: it may hold records that were "
                f"acted on. Restore {exc.path.name} from a backup")
        if last:
            text += (f"; or, to give up its records from byte {exc.offset} on (the jobs they "
                     f"record run again), run `truncate -s {exc.offset} {exc.path}` and then "
                     f"`fntree restart {self.paths.root}`")
        return text

    def _load_snapshot(self, base: int) -> RunState:
        path = self.paths.snapshot(base)
        body = read_sealed(path, f"the run's state cannot be recovered without it: restore "
                                 f"{path.name} from a backup (fntree never rewrites it)")
        try:
            state: RunState = pickle.loads(body)
        except Exception as exc:
            raise JobStoreError(f"{path} checks but does not load ({type(exc).__name__}: "
                                f"{exc}); it was written by another version of fntree: "
                                "continue the run with that version") from exc
        check_origin(state.origin, self.lineage, base, path)
        return state

    def _missing(self, base: int, segments: list[int]) -> str:
        first = max(base, 1)
        if segments and segments[0] > first:
            what = f"journal/snapshot.{segments[0]}"
            return (f"{what} is missing from job store {self.paths.root}, yet the journal goes "
                    f"on in journal/{segments[0]}.log: the run's record is incomplete and "
                    f"cannot be recovered exactly. The store is kept as it is: restore {what} "
                    "from a backup")
        gap = next(n for n in range(first, segments[-1]) if n not in segments)
        return (f"journal/{gap}.log is missing from job store {self.paths.root} between "
                "later segments: the run's record is incomplete and cannot be recovered "
                f"exactly. The store is kept as it is: restore journal/{gap}.log from a backup")

    def _apply(self, state: RunState, records: list[Any], path: Path) -> None:
        try:
            for record in records:
                apply(state, record)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise JobStoreError(f"journal segment {path} holds a record that does not "
                                f"fit the run ({type(exc).__name__}: {exc}); the job "
                                "store is damaged") from exc

    def new_segment(self, number: int) -> Journal:
        """Create segment `number`; its first commit opens with a record of whose and which
        it is (a segment still empty holds nothing to mix up)."""
        return self.open_journal(number, 0)

    def open_journal(self, segment: int, good_size: int) -> Journal:
        """The leader's segment, cut to `good_size`; one with nothing good in it (a leader
        killed before its first commit there) opens with its R_SEGMENT record again."""
        self.meta = upgraded(self.paths, self.meta)  # before a record it may not read
        journal = Journal.open(self.paths.segment(segment), good_size)
        if good_size == 0 and self.lineage is not None:
            journal.append((R_SEGMENT, self.lineage, segment))
        return journal

    def compact(self, state: RunState, journal: Journal, segment: int) -> tuple[Journal, int]:
        """Write the live state as a snapshot and continue in a new, empty segment
        (fntree/runtime/compaction.py: when, and the order of writes)."""
        return compact(self, state, journal, segment)

    def compaction_due(self, journal: Journal, state: RunState) -> bool:
        """Whether the segment after the newest snapshot has outgrown the live state."""
        return self.compaction.due(journal.size, len(state.chains))

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
