"""Values out of line: large arguments and values as content-addressed files in the job store.

An argument or a value whose pickled bytes are longer than `INLINE_LIMIT` does
not travel through the leader. The process that made it (the worker whose job
returned it or spawned the call that takes it; the process that called
`fntree.run`, for the root's arguments) writes it once to `objects/<sha256 of
the bytes>` and puts an `ObjectRef` (the digest and the size, 40 bytes) where
the bytes were: in a job's outcome, a spec's `args`, a `Collected` list. The
leader journals, keeps and forwards only the reference; the worker that needs
the value reads the file itself (`ObjectStore.get`), and so does the caller of
`fntree.run` for the run's value.

A value holding large buffers is written in pieces, never joined in memory:
its pickle stream and the buffers themselves (fntree/runtime/pickled.py, the
file's layout); `load` reads each piece into an object of its own. The leader
also stores values here: those it holds for a follow-on past its budget
(fntree/runtime/spill.py), written without fsync (`durable=False`; the journal
holds their bytes) and made durable by `sync` before a snapshot refers to them.

State: the files under `objects/` and nothing in memory. Invariants:
- the name of an object is the sha256 of its bytes: identical values are
  stored once, and a read checks the bytes against the name, so a flipped bit
  is an error (`DamagedObject`), never a value;
- an object is complete before any record refers to it. Order of writes: the
  bytes to `objects/.<name>.<pid>.<random>.tmp` (0600, O_EXCL, O_NOFOLLOW),
  fsync, rename to `objects/<name>`, fsync `objects/`; only then is the
  reference reported (the worker's result, or the ROOT record), and the leader
  makes it durable in the journal. A crash before the rename leaves a temp
  file; after it, an object no record refers to. Both are orphans, which
  `fntree check` names as collectable and the next leader removes. (A value
  over `_OVERLAP` is hashed by a thread while it is written, so its temp file is
  `.new.<pid>.<random>.tmp`; if its name is already stored by then, it is dropped.)
- a write of a value already stored touches the object (its mtime is now), so a
  collection running meanwhile keeps it (below); a file of that name whose bytes do
  not match it (damaged at rest) is not "already stored": the write replaces it.

Collection (`collect`, by the leader): an object is live while the live state
refers to it (`live_digests`: the jobs of open chains, the values they hold,
the root's spec, the run's value). The leader collects when it starts (no job
of its own is running), after each compaction while running, and after the
run's last compaction. While jobs run, a worker may have written an object it
has not yet reported, so only orphans older than `before` are removed: the
last moment no job was running (every running job was issued after it), less
`CLOCK_SLACK` for clocks of other machines writing to shared storage.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fntree.errors import FntreeError, JobStoreError
from fntree.private import make_private_dir
from fntree.runtime import crashpoints
from fntree.runtime.durable import fsync_dir
from fntree.runtime.pickled import (
    Loaded,
    Pickled,
    read_parts,
)
from fntree.runtime.records import O_SPAWN, O_VALUE, Collected, ObjectRef, Spec
from fntree.runtime.unborn import unborn_digests

__all__ = ["INLINE_LIMIT", "DamagedObject", "Loaded", "ObjectRef", "ObjectStore",
           "ObjectWriteError", "collect_now", "live_digests", "out_of_line", "out_of_line_spec",
           "refs_in"]

log = logging.getLogger("fntree")

INLINE_LIMIT = 64 * 1024  # bytes: longer arguments and values are stored out of line
CLOCK_SLACK = 120.0  # seconds: how far another machine's clock may be behind ours
_CHUNK = 8 << 20
_OVERLAP = 4 << 20  # bytes: longer values are hashed while they are written
_POOL, _POOL_MIN = 16, 8  # threads that fsync or remove objects, when more than _POOL_MIN


class DamagedObject(JobStoreError):
    """An object a live job needs is missing or does not match its name."""


class ObjectWriteError(JobStoreError):
    """A value could not be stored out of line: its disk is full or read-only."""


class ObjectStore:
    """The `objects/` directory of a job store."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, ref: ObjectRef) -> Path:
        return self.directory / ref.name

    def put(self, data: bytes | memoryview | Pickled, durable: bool = True) -> ObjectRef:
        """Store `data` (once), durably; its reference. A write that fails (a full or
        read-only disk) is an `ObjectWriteError` naming the directory and the remedy.
        Not `durable`: neither the file nor the directory is fsynced (the leader's spill,
        fntree/runtime/spill.py, whose values the journal holds; `sync` makes it durable)."""
        try:
            return self._put(data, durable)
        except FntreeError:
            raise
        except OSError as exc:
            raise ObjectWriteError(
                exc.errno, f"cannot store a value of {len(data):,} bytes in {self.directory} "
                f"({exc.strerror or exc}): values over {INLINE_LIMIT // 1024} KiB are kept "
                "there, out of the journal; free space (`df -h`, `df -i`) or make it "
                f"writable, then continue with `fntree restart {self.directory.parent}`"
            ) from exc

    def _put(self, data: bytes | memoryview | Pickled, durable: bool = True) -> ObjectRef:
        """Store `data` (once), durably; its reference.

        A long value is hashed by a thread while it is written (both release the GIL),
        so its name costs no time beside the disk's; one already stored is then
        dropped. A short one is hashed first, and not written when already stored.
        A `Pickled` is written piece by piece, never joined (fntree/runtime/pickled.py).
        """
        size = len(data)
        views = list(data.views()) if isinstance(data, Pickled) else [memoryview(data)]
        digest = hashlib.sha256()
        if size < _OVERLAP:
            for view in views:
                digest.update(view)
            ref = ObjectRef(digest.digest(), size)
            if self._present(ref):
                return ref
            self._write(ref.name, views, lambda: ref, durable)
            return ref
        hasher = threading.Thread(target=_hash_all, args=(digest, views), name="fntree-hash")
        hasher.start()

        def named() -> ObjectRef:
            hasher.join()
            return ObjectRef(digest.digest(), size)
        try:
            return self._write("new", views, named)
        finally:
            hasher.join()

    def _present(self, ref: ObjectRef) -> bool:
        """Whether `ref` is stored intact; if so it is touched (a collection now keeps it).

        A file of that name whose bytes do not match it (damaged at rest) is not present:
        the caller writes the object again over it, so a recomputed value repairs it.
        """
        try:
            if os.lstat(self.path(ref)).st_size != ref.size or not self.intact(ref):
                return False
            os.utime(self.path(ref), follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def _write(self, label: str, views: list[memoryview],
               named: Callable[[], ObjectRef], durable: bool = True) -> ObjectRef:
        """Write `views` to a temp file, fsync it, and rename it to the name `named()` gives
        (or drop it if that object is already stored); then fsync the directory."""
        self._make()
        tmp = self.directory / f".{label}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            try:
                for whole in views:
                    view = whole
                    while view:
                        view = view[os.write(fd, view[:_CHUNK]):]
                crashpoints.point("objects.write")
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            ref = named()
            if self._present(ref):
                tmp.unlink()
                return ref
            os.replace(tmp, self.path(ref))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        crashpoints.point("objects.rename")
        if durable:
            fsync_dir(self.directory)
        return ref

    def sync(self, refs: Iterable[ObjectRef]) -> None:
        """Make the objects `refs` (written not durable) and the directory durable; those
        removed since (no longer referred to) are skipped."""
        _each(self._sync_one, list(refs))
        fsync_dir(self.directory)

    def _sync_one(self, ref: ObjectRef) -> None:
        try:
            fd = os.open(self.path(ref), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _make(self) -> None:
        """The directory, made owner-only and durable in its parent the first time."""
        if not os.path.isdir(self.directory):
            make_private_dir(self.directory)
            fsync_dir(self.directory.parent)

    def get(self, ref: ObjectRef) -> bytes:
        """The bytes of `ref`, checked against its name; DamagedObject if missing or damaged."""
        return b"".join(self._checked(ref)[0])

    def load(self, ref: ObjectRef) -> Loaded:
        """The stored object `ref` as a pickle stream and its out-of-band pieces, each read
        into an object of its own and checked against the name; DamagedObject if missing or
        damaged. A whole pickle stream (not a `Pickled`) has no pieces."""
        return Loaded.of(*self._checked(ref))

    def _checked(self, ref: ObjectRef) -> tuple[list[Any], list[int] | None]:
        """The parts of `ref` (`read_parts`), their bytes checked against its name."""
        path = self.path(ref)
        try:
            parts, kinds = read_parts(path, ref.size)
        except OSError as exc:
            raise DamagedObject(f"the value {path} is missing or unreadable ({exc.strerror}); "
                                f"{_REMEDY}") from exc
        except ValueError as exc:
            raise DamagedObject(f"the value {path} is damaged ({exc}); {_REMEDY}") from exc
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part)
        if digest.digest() != ref.digest:
            raise DamagedObject(f"the value {path} is damaged (its bytes do not match its "
                                f"name); {_REMEDY}")
        return parts, kinds

    def intact(self, ref: ObjectRef) -> bool:
        """Whether `ref` is stored here as a regular file whose bytes match its name."""
        try:
            self._checked(ref)
        except DamagedObject:
            return False
        return True

    def adopt(self, ref: ObjectRef, source: Path) -> None:
        """Make `ref` present here from the object file `source` (a hard link, or a copy)."""
        path = self.path(ref)
        if os.path.lexists(path) and self.intact(ref):
            os.utime(path, follow_symlinks=False)
            return
        self._make()
        tmp = self.directory / f".{ref.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        try:
            os.link(source, tmp, follow_symlinks=False)
        except OSError:  # another file system: a copy, made durable
            with open(source, "rb") as src, open(
                    os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600),
                    "wb") as dst:
                while chunk := src.read(_CHUNK):
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
        os.replace(tmp, path)
        fsync_dir(self.directory)

    def entries(self) -> Iterator[os.DirEntry[str]]:
        """Every file in the directory: objects and temp files."""
        with contextlib.suppress(FileNotFoundError), os.scandir(self.directory) as found:
            yield from list(found)

    def collect(self, live: set[bytes], before: float) -> tuple[int, int]:
        """Remove orphans (objects not in `live`, temp files) last touched before `before`.

        Returns (files removed, bytes freed). Many are removed by a pool of threads: the
        file system commits their removals together, not one by one.
        """
        orphans: list[tuple[str, int]] = []
        for entry in self.entries():
            if _digest_of(entry.name) in live:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if st.st_mtime >= before:
                continue
            if not stat.S_ISREG(st.st_mode):  # fntree makes none: not ours to remove
                log.warning("%s is not a file fntree wrote; left in place: remove it "
                            "by hand", entry.path)
                continue
            orphans.append((entry.path, st.st_size))
        removed = [size for size in _each(_remove, orphans) if size is not None]
        return len(removed), sum(removed)


def _remove(orphan: tuple[str, int]) -> int | None:
    """Remove an orphan; its size, or None if it was gone already."""
    try:
        os.unlink(orphan[0])
    except FileNotFoundError:
        return None
    crashpoints.point("objects.collect")
    return orphan[1]


def _each(action: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """`action` applied to each of `items`; by a pool of threads when they are many (so a
    file system commits their fsyncs or removals together)."""
    if len(items) <= _POOL_MIN:
        return [action(item) for item in items]
    with ThreadPoolExecutor(_POOL, thread_name_prefix="fntree-objects") as pool:
        return list(pool.map(action, items))


def _hash_all(digest: Any, views: list[memoryview]) -> None:
    for view in views:
        digest.update(view)


_REMEDY = ("restore it from a backup of the job store; without it the jobs that need it "
           "cannot run: start the run again in a new job store (a cache, `--cache`, keeps "
           "what its pure targets computed)")


def _digest_of(name: str) -> bytes | None:
    """The digest an object's file name spells, None for anything else (temp files)."""
    if len(name) != 64:
        return None
    try:
        return bytes.fromhex(name)
    except ValueError:
        return None


# -- references in values, specs and outcomes ------------------------------------------------
def stored(data: bytes | Pickled, objects: ObjectStore) -> bytes | ObjectRef:
    """`data` itself when short, else a reference to it written out of line."""
    return data if len(data) <= INLINE_LIMIT and type(data) is bytes else objects.put(data)


def out_of_line_spec(spec: Spec, objects: ObjectStore) -> Spec:
    """`spec` with its long argument bytes (its own and its deps') stored out of line."""
    if not _has_long_args(spec):
        return spec
    deps = tuple(out_of_line_spec(dep, objects) for dep in spec.deps)
    args = spec.args if isinstance(spec.args, ObjectRef) else stored(spec.args, objects)
    return spec._replace(args=args, deps=deps)


def _has_long_args(spec: Spec) -> bool:
    stack = [spec]
    while stack:
        node = stack.pop()
        if type(node.args) is Pickled or (type(node.args) is bytes
                                           and len(node.args) > INLINE_LIMIT):
            return True
        stack.extend(node.deps)
    return False


def out_of_line(outcome: tuple[Any, ...], objects: ObjectStore) -> tuple[Any, ...]:
    """A job's outcome with its long value, or its calls' long arguments, out of line."""
    if outcome[0] == O_VALUE:
        value = outcome[1]
        if type(value) is Pickled or (type(value) is bytes and len(value) > INLINE_LIMIT):
            return (O_VALUE, objects.put(value))
        return outcome
    assert outcome[0] == O_SPAWN
    children, follow = outcome[1], outcome[2]
    if not any(map(_has_long_args, children)) and (follow is None
                                                    or not _has_long_args(follow)):
        return outcome
    return (O_SPAWN, [out_of_line_spec(c, objects) for c in children],
            None if follow is None else out_of_line_spec(follow, objects), *outcome[3:])


def refs_in(value: Any) -> Iterator[ObjectRef]:
    """The references in a stored value (bytes, a reference, or nested `Collected`)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is ObjectRef:
            yield item
        elif kind is Collected:
            stack.extend(item.values)


def spec_refs(spec: Spec) -> Iterator[ObjectRef]:
    """The references among the argument bytes of `spec` and of its deps."""
    stack = [spec]
    while stack:
        node = stack.pop()
        if type(node.args) is ObjectRef:
            yield node.args
        stack.extend(node.deps)


def live_digests(state: Any, kept: bool = False) -> set[bytes]:
    """The digests of every object the live state (a `RunState`) refers to; with `kept`,
    also those of unborn chunks it holds in memory (not needed, not orphans either)."""
    live: set[bytes] = set()
    specs: list[Spec] = [] if state.root is None else [state.root]
    values: list[Any] = [state.value]
    for chain in state.chains.values():
        if chain.job is not None:
            specs.append(chain.job)
        if chain.values:
            values.extend(chain.values)
    live.update(unborn_digests(state, kept))  # children not yet born
    for spec in specs:
        live.update(ref.digest for ref in spec_refs(spec))
    for value in values:
        live.update(ref.digest for ref in refs_in(value))
    return live


def orphans(objects: ObjectStore, live: Iterable[bytes]) -> list[str]:
    """The names of the files in `objects/` that the live state does not refer to."""
    keep = set(live)
    return sorted(e.name for e in objects.entries() if _digest_of(e.name) not in keep)


def collect_now(objects: ObjectStore, state: Any, before: float | None = None) -> tuple[int, int]:
    """Collect the orphans of `state` last touched before `before` (default: now).

    Returns (files removed, bytes freed). A file that cannot be removed is left with a
    warning: a later leader collects it.
    """
    if not any(True for _ in objects.entries()):
        return 0, 0
    try:
        return objects.collect(live_digests(state, kept=True),
                               time.time() if before is None else before)
    except OSError as exc:
        log.warning("cannot remove unused values from %s (%s); a later run removes them",
                    objects.directory, exc)
        return 0, 0
