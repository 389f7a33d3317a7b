"""The cache across runs: values of pure targets, kept by a key of their code and inputs.

A target declared `@fntree.target(cache=True)` is pure: its value depends only
on its code and its arguments. A run given a cache directory (`cache=`,
`--cache`, `$FNTREE_CACHE`) looks up each call of a pure target before running it.

Key (`job_key` in fntree/runtime/cachekey.py, a 32-byte blake2b): the target's
code hash (fntree.identity), the bytes of its arguments as the call serialized
them, the bytes of the values that fill its promised arguments (so: its
arguments with promises resolved), and the content of every argument that is a
`pathlib.Path` to an existing file (its bytes) or directory (its files' relative
names and bytes, recursively). Paths are found anywhere inside lists, tuples,
sets and dicts among the arguments; only calls whose argument bytes mention
`pathlib` are walked.

Who does what. The worker computes the key (it decodes the arguments anyway,
and hashing files there keeps the leader from stalling), once it has the
function's code hash (computed once per function and worker process). On a hit
it reports the stored value as the job's value (`Result.cached`) without
running the body; on a miss it runs the body and, if the job ended with a value,
queues the entry for its writer threads, which the worker drains before it
reports the last result of a packet (so a worker the leader takes to be free has
no writes pending, and none is lost when the run ends). A pure
job whose body spawned children has no value yet: the worker sends its key with
the result (`Result.cache_note`), the leader's `ChainWatch` remembers it for the
job's chain, and when that chain closes (its whole subtree done) the leader
writes the chain's closing value under the key, after the journal commit that
made the closing durable. The watch is not journaled: a leader that dies before
such a chain closes leaves those entries unwritten (a later run computes them
again), never wrong.

Layout: `DIR/v1/<first 2 hex digits>/<64 hex digits of the key>`, directories
0700, files 0600. An entry is

    magic b"fntreeC2" | blake2b-256 digest of the rest | key (32 bytes) | u32 name length
    | name | body

where `key` is the entry's own key (so an entry moved or copied to another key's
name is not taken for it), `name` the target's name (for `fntree cache --stats`)
and `body` the pickle of the stored value (bytes, or a `Collected` of them). An
entry that is short, has the wrong magic, a digest that does not match, another
key or a body that does not load is a miss with a warning, never a value. Entries
written before the key was in them (magic b"fntreeC1", no key) are still read.

Values stored out of line (fntree/runtime/objects.py) stay out of line: an
entry holds their references, and the objects themselves are kept in
`DIR/objects/<sha256>` (hard links to the job store's objects when on the same
file system, else copies), put there before the entry is written. A hit makes
them present in the job store again (linked or copied back) before the worker
reports the value; an entry whose object is gone is a miss with a warning.

Atomicity: an entry is written to a temp file in its own directory (a name
unique to the process, O_EXCL), fsynced, renamed over the entry's name and the
directory fsynced. Readers see no entry or a whole one; two runs writing the
same key at once both write the same value and the last rename wins, so runs
may share a cache. A hit sets the entry's mtime to now: `prune` removes entries
by last use. The directory must be its owner's and not writable by others,
since fntree loads the pickles it holds.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import pickle
import stat
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from fntree.errors import FntreeError
from fntree.runtime.cachekey import job_key
from fntree.runtime.cachewriter import Writer
from fntree.runtime.durable import atomic_write, make_private_dir
from fntree.runtime.objects import ObjectRef, ObjectStore, refs_in
from fntree.runtime.records import O_SPAWN, O_VALUE, Collected

log = logging.getLogger("fntree")

ENV = "FNTREE_CACHE"
MAGIC = b"fntreeC2"
_MAGIC_1 = b"fntreeC1"  # entries that do not hold their key, written before it: still read
_KEY = 32  # bytes of a key (blake2b-256)
_LEN = struct.Struct("<I")
_HEAD = 44  # magic, digest, name length
_LAYOUT = "v1"


class CacheError(FntreeError, PermissionError):
    """A cache directory that fntree cannot safely use."""


# -- the directory -----------------------------------------------------------------------
class Cache:
    """A cache directory: lookups and atomic, checksummed writes of entries."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries = root / _LAYOUT
        self.objects = ObjectStore(root / "objects")
        self.store_objects: ObjectStore | None = None  # the job store's, where values go

    @classmethod
    def open(cls, root: str | os.PathLike[str], create: bool = True) -> Cache:
        """The cache at `root`, made (0700) if missing; CacheError if others could write it."""
        path = Path(root).expanduser().absolute()
        if not create and not path.exists():
            raise CacheError(f"there is no cache at {path}; check the path")
        try:
            if not os.path.lexists(path):  # its missing parents owner-only too, any umask
                make_private_dir(path)
            st = path.stat()
        except OSError as exc:
            raise CacheError(f"cannot use {path} as a cache directory ({exc}); choose a "
                             "directory you can write") from exc
        if not path.is_dir():
            raise CacheError(f"the cache {path} is not a directory; choose another path")
        if st.st_uid != os.getuid():
            raise CacheError(f"the cache directory {path} belongs to another user; it holds "
                             "pickled values that fntree loads, so use a directory of your own")
        if st.st_mode & 0o022:
            raise CacheError(f"the cache directory {path} is writable by others (mode "
                             f"{st.st_mode & 0o777:o}); it holds pickled values that fntree "
                             f"loads: run `chmod go-w {path}` or choose another directory")
        return cls(path)

    def path(self, key: bytes) -> Path:
        name = key.hex()
        return self.entries / name[:2] / name

    def get(self, key: bytes) -> tuple[bool, Any, str]:
        """(found, value, warning): a damaged entry is not found, with a warning saying so."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False, None, ""
        except OSError as exc:
            return False, None, f"cannot read the cache entry {path} ({exc}); running the job"
        try:
            _, value = decode_entry(data, key=key)
        except ValueError as exc:
            return False, None, (f"the cache entry {path} is damaged ({exc}); running the "
                                 "job and writing the entry again")
        with contextlib.suppress(OSError):  # last use not recorded: pruned sooner, no more
            os.utime(path)
        try:
            self._objects_between(value, self.objects, self.store_objects)
        except OSError as exc:
            return False, None, (f"the cache entry {path} refers to a value that cannot be "
                                 f"read ({exc}); running the job and writing the entry again")
        return True, value, ""

    @staticmethod
    def _objects_between(value: Any, source: ObjectStore, dest: ObjectStore | None) -> None:
        """Make the objects `value` refers to present in `dest`, from `source`."""
        for ref in refs_in(value):
            if dest is None:
                raise FileNotFoundError("no job store to hold it")
            if not source.intact(ref):  # removed, so that the recomputed value is kept
                with contextlib.suppress(OSError):
                    os.unlink(source.path(ref))
                raise OSError(errno.EIO, f"{source.path(ref)} is missing or damaged")
            dest.adopt(ref, source.path(ref))
            os.utime(source.path(ref), follow_symlinks=False)  # last use, as for entries

    def put(self, key: bytes, name: str, value: Any) -> str:
        """Write an entry; a warning if it could not be written (the run goes on)."""
        path = self.path(key)
        try:
            self._objects_between(value, self.store_objects or self.objects, self.objects)
            _write(path, encode_entry(name, value, key))
        except (OSError, pickle.PicklingError) as exc:
            return f"cannot write the cache entry {path} ({exc}); the value is not cached"
        return ""

    def files(self) -> Iterator[os.DirEntry[str]]:
        """Every file under the entries' directories, temp files included."""
        try:
            tops = list(os.scandir(self.entries))
        except FileNotFoundError:
            return
        for top in tops:
            if top.is_dir(follow_symlinks=False):
                yield from os.scandir(top.path)


def encode_entry(name: str, value: Any, key: bytes) -> bytes:
    """An entry's bytes: magic, the digest of the rest, then its key, name and value."""
    label = name.encode()
    rest = key + _LEN.pack(len(label)) + label + pickle.dumps(value, 5)
    return MAGIC + hashlib.blake2b(rest, digest_size=32).digest() + rest


def decode_entry(data: bytes, load: bool = True, key: bytes | None = None) -> tuple[str, Any]:
    """(name, value) of an entry's bytes; ValueError if they are not a whole entry, or (given
    `key`) not the entry of that key."""
    if len(data) < _HEAD:
        raise ValueError(f"{len(data)} bytes, shorter than a header")
    if data[:8] not in (MAGIC, _MAGIC_1):
        raise ValueError("not a cache entry (wrong magic)")
    rest = data[40:]
    if hashlib.blake2b(rest, digest_size=32).digest() != data[8:40]:
        raise ValueError("its checksum does not match")
    if data[:8] == MAGIC:
        if len(rest) < _KEY + _LEN.size:
            raise ValueError(f"{len(data)} bytes, shorter than a header")
        if key is not None and rest[:_KEY] != key:
            raise ValueError("it is the entry of another key (moved or copied to this name)")
        rest = rest[_KEY:]
    (size,) = _LEN.unpack_from(rest)
    name = rest[4:4 + size].decode(errors="replace")
    if not load:
        return name, None
    try:
        value = pickle.loads(rest[4 + size:])
    except Exception as exc:
        raise ValueError(f"its value does not load: {type(exc).__name__}") from exc
    if not isinstance(value, (bytes, Collected, ObjectRef)):
        raise ValueError(f"it holds a {type(value).__name__}, not a stored value")
    return name, value


def _write(path: Path, data: bytes) -> None:
    """Atomically and durably, in an owner-only directory (one per key prefix)."""
    make_private_dir(path.parent)
    atomic_write(path, data)


# -- in the worker -----------------------------------------------------------------------
class Probe(NamedTuple):
    """A pure job's lookup: its key, and the stored value when found."""

    key: bytes
    name: str
    hit: bool
    value: Any
    warning: str


# The DSL's hook: (code hash, declared pure) of a target, None for anything else.
Identify = Callable[[Any], "tuple[bytes, bool] | None"]


class WorkerCache:
    """The worker's side: keys, lookups before a pure job runs, writes after it ran.

    Entries are written by a thread (fntree/runtime/cachewriter.py), so that a job's
    result does not wait for two fsyncs; `drain()` (before a packet's last result is reported)
    waits for the writes queued so far. A write that failed is reported with the next
    pure job's result.
    """

    def __init__(self, cache: Cache, identify: Identify) -> None:
        self.cache = cache
        self.identify = identify
        self._codes: dict[bytes, bytes | None] = {}
        self._writer = Writer(cache)

    @classmethod
    def from_env(cls, identify: Identify | None) -> WorkerCache | None:
        """The cache `$FNTREE_CACHE` names, or None (no cache, or one that cannot be used)."""
        root = os.environ.get(ENV)
        if not root or identify is None:
            return None
        try:
            return cls(Cache.open(root), identify)
        except CacheError as exc:
            log.warning("%s; this worker runs without the cache", exc)
            return None

    def probe(self, fn_key: bytes, name: str, body: Any, args: bytes, values: Sequence[Any],
              decoded: Any) -> Probe | None:
        """None for a target that is not pure; else its key and what the cache holds."""
        code = self._codes.get(fn_key, b"")
        if code == b"":
            ident = self.identify(body)
            code = self._codes[fn_key] = ident[0] if ident is not None and ident[1] else None
        if code is None:
            return None
        try:
            key = job_key(code, args, values, decoded, self._code_of)
        except OSError as exc:  # a file argument that cannot be read: the body will say so
            return Probe(b"", name, False, None, f"cannot make the cache key ({exc}); the job "
                         "runs and its value is not cached")
        found, value, warning = self.cache.get(key)
        return Probe(key, name, found, value, warning)

    def _code_of(self, obj: Any) -> bytes | None:
        """The code hash of a target passed as an argument (by name, its code is not in the
        argument bytes), else None."""
        found = self.identify(obj)
        return None if found is None else found[0]

    def settle(self, probe: Probe, outcome: tuple[Any, ...] | None) -> tuple[bytes, str]:
        """After the body ran: (key for the leader to write when the chain closes, warning)."""
        warning = "; ".join(w for w in (probe.warning, *self._writer.failures()) if w)
        if outcome is None or probe.hit or not probe.key:
            return b"", warning
        if outcome[0] == O_VALUE:
            self._writer.put(probe.key, probe.name, outcome[1])
            return b"", warning
        assert outcome[0] == O_SPAWN
        return probe.key, warning

    def drain(self) -> None:
        """Wait until the entries queued so far are written."""
        self._writer.drain()


# -- in the leader -----------------------------------------------------------------------
class ChainWatch:
    """Keys of pure jobs that spawned, written with their chain's closing value.

    The leader calls `before(state, chain)` ahead of applying a completion in
    `chain`, and `after(state, candidates)` once applied: a candidate chain that
    is gone has closed, and its value is where `state._close` put it (its parent's
    `values`, or the run's value). `flush()`, after the commit, queues the entries
    for writer threads (the leader's loop never waits for their fsyncs), and with
    `wait` (the run's last commit) waits until they are written.
    """

    def __init__(self, cache: Cache, objects: Path | None = None) -> None:
        self.cache = cache
        if objects is not None:  # the job store's values stored out of line
            cache.store_objects = ObjectStore(objects)
        self.keys: dict[int, list[tuple[bytes, str]]] = {}
        self.ready: list[tuple[bytes, str, Any]] = []
        self._writer = Writer(cache)

    def add(self, chain_id: int, key: bytes, name: str) -> None:
        keys = self.keys.setdefault(chain_id, [])
        if (key, name) not in keys:
            keys.append((key, name))

    def before(self, state: Any, chain: Any) -> list[tuple[Any, Any]]:
        """The watched chains that may close with this completion, each with its parent."""
        found = []
        while chain is not None:
            parent = None if chain.parent is None else state.chains.get(chain.parent)
            if chain.chain_id in self.keys:
                found.append((chain, parent))
            # a parent closes with its child only when that child is the last it waits
            # for and it has no follow-on: the walk stops where the cascade must stop
            if parent is None or parent.pending > 1 or parent.job is not None:
                break
            chain = parent
        return found

    def after(self, state: Any, candidates: list[tuple[Any, Any]]) -> None:
        for chain, parent in candidates:
            if chain.chain_id in state.chains:
                continue
            value = state.value if parent is None else parent.values[chain.index]
            for key, name in self.keys.pop(chain.chain_id):
                self.ready.append((key, name, value))

    def flush(self, wait: bool = False) -> list[str]:
        """Queue the entries of closed chains; the warnings of writes that failed so far."""
        ready, self.ready = self.ready, []
        for key, name, value in ready:
            self._writer.put(key, name, value)
        if wait:
            self._writer.drain()
        return self._writer.failures()


# -- managing a cache directory ------------------------------------------------------------
def stats(cache: Cache) -> dict[str, Any]:
    """Entries, bytes, oldest and newest last use, and entries and bytes per target."""
    entries = size = 0
    oldest = newest = None
    targets: dict[str, dict[str, int]] = {}
    for entry in cache.files():
        if entry.name.startswith("."):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            with open(entry.path, "rb") as f:
                head = f.read(_HEAD + 4096)
        except OSError:
            continue
        name = "(damaged)"
        at = 40 + _KEY if head[:8] == MAGIC else 40
        if head[:8] in (MAGIC, _MAGIC_1) and len(head) >= at + _LEN.size:
            (length,) = _LEN.unpack_from(head, at)
            name = head[at + _LEN.size:at + _LEN.size + length].decode(errors="replace")
        entries += 1
        size += st.st_size
        oldest = st.st_mtime if oldest is None else min(oldest, st.st_mtime)
        newest = st.st_mtime if newest is None else max(newest, st.st_mtime)
        counts = targets.setdefault(name, {"entries": 0, "bytes": 0})
        counts["entries"] += 1
        counts["bytes"] += st.st_size
    return {"cache": str(cache.root), "entries": entries, "bytes": size,
            "oldest_use": oldest, "newest_use": newest, "targets": targets}


def prune(cache: Cache, older_than: float, now: float | None = None) -> tuple[int, int]:
    """Remove entries (and stray temp files) last used more than `older_than` seconds ago.

    Returns (entries removed, bytes freed).
    """
    cutoff = (time.time() if now is None else now) - older_than
    removed = freed = 0
    for entry in cache.files():
        size = _remove_if_older(entry, cutoff)
        if size is not None and not entry.name.startswith("."):
            removed += 1
            freed += size
    for entry in cache.objects.entries():  # values out of line, touched by every use
        freed += _remove_if_older(entry, cutoff) or 0
    return removed, freed


def _remove_if_older(entry: os.DirEntry[str], cutoff: float) -> int | None:
    """Remove the file `entry` if last used before `cutoff`: its size, else None. What is not
    a regular file (fntree makes none there) or cannot be removed is left, with a warning."""
    try:
        st = entry.stat(follow_symlinks=False)
        if st.st_mtime >= cutoff:
            return None
        if not stat.S_ISREG(st.st_mode):
            log.warning("%s is not a file fntree wrote; left in place: remove it by hand",
                        entry.path)
            return None
        os.unlink(entry.path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot remove %s (%s); left in place", entry.path, exc.strerror or exc)
        return None
    return st.st_size
