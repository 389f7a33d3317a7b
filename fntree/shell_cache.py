"""The cache across runs for shell targets declared `@fntree.shell(cache=True)`.

A shell job is looked up after its body has made the command and before the
command runs, in the cache directory the run was given (`$FNTREE_CACHE`, as
for pure targets: fntree/runtime/cache.py, whose entries, atomic writes and
checksums it shares). Its key (blake2b, its own personalization) digests:

- the command as run, each output's temporary path replaced by its final one;
- the tool's identity: `version=` when declared, else the executable the
  command starts (argv[0], or a string command's first word that is not a
  variable assignment) resolved on PATH, with its size and mtime (`-` when it
  cannot be resolved: a shell builtin or a function);
- the content of every argument that is a `pathlib.Path` (files by their
  bytes, directories recursively, fntree/runtime/cachekey.py), outputs excepted;
- the outputs' final paths and the capture limit.

The entry's value is the pickle of the job's value and, for each output, its
final path, size and content digest. A hit needs every output present with
that size and digest: an output deleted or changed since makes a miss, and
the command runs again (and writes the entry again). The generic lookup of
pure targets does not apply to shell targets (`ShellTarget.cache` is False),
so a shell job is never taken from the cache without this check.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shlex
import shutil
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fntree.runtime.cache import ENV, Cache, CacheError
from fntree.runtime.cachekey import _file_digest, _hash_path, _paths
from fntree.shell_outputs import Outputs

_PERSON = b"fntree-shell-1"


class Lookup:
    """One shell job's key and, on a hit, its value."""

    def __init__(self, cache: Cache, key: bytes, name: str) -> None:
        self.cache = cache
        self.key = key
        self.name = name
        self.hit = False
        self.value: Any = None

    def store(self, value: Any, outputs: Outputs) -> None:
        """Write the entry for a run that succeeded (its outputs already in place)."""
        files = [(str(final), _size(final), _digest(final)) for final in outputs.finals]
        record = pickle.dumps({"value": value, "outputs": files}, 5)
        warning = self.cache.put(self.key, self.name, record)
        if warning:
            print(f"fntree: {warning}", file=sys.stderr, flush=True)


def lookup(command: Sequence[str], version: str | None, arguments: dict[str, Any],
           outputs: Outputs, capture: int) -> Lookup | None:
    """The job's key and what the cache holds for it; None without a usable cache."""
    root = os.environ.get(ENV)
    if not root:
        return None
    try:
        cache = Cache.open(root)
    except CacheError as exc:
        print(f"fntree: {exc}; the command runs without the cache", file=sys.stderr, flush=True)
        return None
    key = _key(command, version, arguments, outputs, capture)
    found = Lookup(cache, key, command[-1][:100])
    present, stored, warning = cache.get(key)
    if warning:
        print(f"fntree: {warning}", file=sys.stderr, flush=True)
    if present and isinstance(stored, bytes):
        record = pickle.loads(stored)
        if all(_unchanged(Path(path), size, digest) for path, size, digest in record["outputs"]):
            found.hit, found.value = True, record["value"]
    return found


def _key(command: Sequence[str], version: str | None, arguments: dict[str, Any],
         outputs: Outputs, capture: int) -> bytes:
    h = hashlib.blake2b(digest_size=32, person=_PERSON)
    for word in command:
        data = os.fsencode(word)
        h.update(b"w" + struct.pack("<Q", len(data)) + data)
    h.update(b"v" + (version.encode() if version is not None else tool_identity(command)))
    temps = {str(temp) for temp in outputs.temps}
    inputs = [v for v in arguments.values()
              if not (isinstance(v, (str, os.PathLike)) and os.fspath(v) in temps)]
    for path in sorted(set(_paths(inputs, 0)), key=str):
        h.update(b"P" + os.fsencode(path) + b"\0")
        _hash_path(h, path)
    for final in outputs.finals:
        h.update(b"O" + os.fsencode(final) + b"\0")
    h.update(b"c" + struct.pack("<Q", capture))
    return h.digest()


def tool_identity(command: Sequence[str]) -> bytes:
    """The executable a command starts, with its size and mtime; b"-" if it is not a file."""
    word = _program(command)
    found = shutil.which(word) if word else None
    if found is None:
        return b"-" + os.fsencode(word or "")
    try:
        st = os.stat(found)
    except OSError:
        return b"-" + os.fsencode(found)
    real = os.path.realpath(found)
    return os.fsencode(real) + struct.pack("<QQ", st.st_size, st.st_mtime_ns)


def _program(command: Sequence[str]) -> str | None:
    if command[0] != "bash" or len(command) != 2:
        return command[0]
    try:
        words = shlex.split(command[1])
    except ValueError:
        return None
    for word in words:
        if "=" not in word or word.startswith("="):
            return word
    return None


def _unchanged(path: Path, size: int, digest: bytes) -> bool:
    try:
        return _size(path) == size and _digest(path) == digest
    except OSError:
        return False


def _digest(path: Path) -> bytes:
    if path.is_dir():
        h = hashlib.blake2b(digest_size=32)
        _hash_path(h, path)
        return h.digest()
    return _file_digest(path)


def _size(path: Path) -> int:
    """A file's size; -1 for a directory (its content is in its digest)."""
    return -1 if path.is_dir() else path.stat().st_size
