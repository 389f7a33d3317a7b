"""The key of a call of a pure target in the cache across runs (see fntree/runtime/cache.py).

`job_key` digests the target's code hash, the call's argument bytes, the bytes
of the values that fill its promised arguments, and the content of every
`pathlib.Path` among its arguments that names an existing file or directory,
and the code hash of every target among its arguments (a target travels by
name, so its code is not in the argument bytes).
Bytes stored out of line (fntree/runtime/objects.py) are digested by their
sha256, which names them; the threshold is fixed, so one input always takes
the same form.
Everything is length-prefixed or tagged, so two different inputs never hash the
same stream of bytes.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from fntree.runtime.objects import ObjectRef
from fntree.runtime.records import Collected
from fntree.runtime.spill import SPILL_MIN

_PERSON = b"fntree-key-1"


def job_key(code: bytes, args: bytes | ObjectRef, values: Sequence[Any], decoded: Any,
            code_of: Callable[[Any], bytes | None] | None = None) -> bytes:
    """The key of a call: its code hash, its argument bytes, promised values, file contents,
    and the code hashes (`code_of`) of the targets among its arguments."""
    h = hashlib.blake2b(digest_size=32, person=_PERSON)
    h.update(struct.pack("<Q", len(code)) + code)
    if isinstance(args, ObjectRef):  # stored out of line: its digest stands for its bytes
        h.update(b"o" + args.digest)
        mentions_path = True
    else:
        h.update(struct.pack("<Q", len(args)) + args)
        mentions_path = b"pathlib" in args
    for value in values:
        mentions_path = _hash_value(h, value) or mentions_path
    if mentions_path:
        for path in sorted(set(_paths(decoded, 0)), key=str):
            h.update(b"P" + os.fsencode(path) + b"\0")
            _hash_path(h, path)
    if code_of is not None and (type(args) is ObjectRef
                                or any(marker in args for marker in _TARGET_MARKERS)):
        for item in _items(decoded, 0):
            target_code = code_of(item)
            if target_code is not None:
                h.update(b"T" + struct.pack("<Q", len(target_code)) + target_code)
    return h.digest()


# What the argument bytes hold when a target is among them (by reference, or by value).
_TARGET_MARKERS = (b"_load_target", b"fntree.dsl")


def _items(obj: Any, depth: int) -> Iterator[Any]:
    """`obj` and what lists, tuples, sets and dicts in it hold, in order."""
    yield obj
    if depth < 32 and isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _items(item, depth + 1)
    elif depth < 32 and isinstance(obj, dict):
        for item in obj.items():
            yield from _items(item, depth + 1)


def _hash_value(h: Any, value: Any) -> bool:
    """Hash a stored value; whether its bytes mention pathlib."""
    if isinstance(value, Collected):
        h.update(b"c" + struct.pack("<Q", len(value.values)))
        mentions = False
        for v in value.values:  # every value is hashed: no short cut
            mentions = _hash_value(h, v) or mentions
        return mentions
    if type(value) is ObjectRef:
        h.update(b"o" + value.digest)
        return True
    if len(value) >= SPILL_MIN:  # the leader may hold it spilled: keyed as its reference
        h.update(b"o" + hashlib.sha256(value).digest())
        return b"pathlib" in value
    h.update(b"b" + struct.pack("<Q", len(value)) + value)
    return b"pathlib" in value


def _paths(obj: Any, depth: int) -> Iterator[Path]:
    if isinstance(obj, Path):
        yield obj
    elif depth < 32 and isinstance(obj, (list, tuple, set, frozenset)):
        for item in obj:
            yield from _paths(item, depth + 1)
    elif depth < 32 and isinstance(obj, dict):
        for item in obj.items():
            yield from _paths(item, depth + 1)


def _hash_path(h: Any, path: Path) -> None:
    if path.is_file():
        h.update(b"f" + _file_digest(path))
    elif path.is_dir():
        h.update(b"d")
        for top, dirs, files in os.walk(path):
            dirs.sort()
            rel = os.path.relpath(top, path)
            h.update(b"D" + os.fsencode(rel) + b"\0")
            for name in sorted(files):
                full = os.path.join(top, name)
                h.update(b"F" + os.fsencode(name) + b"\0")
                h.update(_file_digest(Path(full)) if os.path.isfile(full) else b"-")
    else:
        h.update(b"-")


def _file_digest(path: Path) -> bytes:
    h = hashlib.blake2b()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.digest()
