"""Serialization of functions, arguments and values.

Plain data takes the fast path (the C pickler). Anything the C pickler refuses,
or that it could only save as a reference into `__main__` (a function, class or
object defined in a script or a notebook, which a worker could not import),
goes through dill, which saves it by value.

Promises: `dumps(obj, promise_type)` saves every instance of `promise_type`
found anywhere in `obj` as a numbered slot (pickle's persistent ids) and returns
those instances in slot order; `loads(data, slot_values)` fills slot `i` with
the value `slot_values[i]`. The runtime never learns what a promise is.

Values travel as bytes and are decoded only where they are used (in a worker,
or by the caller of `fntree.run`); the leader stores and forwards them as they are.
Bytes longer than `objects.INLINE_LIMIT` travel as an `ObjectRef` instead
(fntree/runtime/objects.py): `loads` and `decode_value` read them from the
job store's `objects/` given as `objects`. `dumps(..., split=True)` (a call's
arguments, a job's value) keeps `bytes`, `bytearray` and protocol 5 buffers over
64 KiB out of band, as persistent ids and buffers beside the stream: a `Pickled`
(fntree/runtime/pickled.py), which the process that made it stores out of line
piece by piece.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import pickle
import types
from collections.abc import Sequence
from typing import Any, Literal, overload

import dill

from fntree.errors import SerializationError
from fntree.runtime.objects import Loaded, ObjectRef, ObjectStore
from fntree.runtime.pickled import (
    BUFFER,
    BYTEARRAY,
    BYTES,
    OUT_OF_BAND,
    WRITABLE_BUFFER,
    Pickled,
)
from fntree.runtime.records import Collected

PROTOCOL = pickle.HIGHEST_PROTOCOL
_MAIN_MARKER = b"__main__"
_PLAIN = (int, float, str, bytes, bool, type(None))


class _CollectPromises:
    """The persistent ids of a pickle: promises (slots 0, 1, ...) and, when `split`, long
    `bytes` and `bytearray` objects (pieces -1, -2, ...; fntree/runtime/pickled.py), with the
    protocol 5 buffers given to `buffer`."""

    def __init__(self, promise_type: type | None, split: bool = False) -> None:
        self.promise_type = promise_type
        self.found: list[Any] = []
        self.index: dict[int, int] = {}
        self.split = split
        self.pieces: list[bytes] = []
        self.kinds: list[int] = []
        self.piece_ids: dict[int, int] = {}

    def persistent_id(self, obj: Any) -> int | None:
        kind = type(obj)
        if kind is self.promise_type:
            key = id(obj)
            slot = self.index.get(key)
            if slot is None:
                slot = self.index[key] = len(self.found)
                self.found.append(obj)
            return slot
        if self.split and (kind is bytes or kind is bytearray) and len(obj) > OUT_OF_BAND:
            piece = self.piece_ids.get(id(obj))
            if piece is None:
                piece = self.piece_ids[id(obj)] = len(self.pieces)
                self.pieces.append(obj if kind is bytes else bytes(obj))
                self.kinds.append(BYTES if kind is bytes else BYTEARRAY)
            return -1 - piece
        return None

    def buffer(self, buffer: pickle.PickleBuffer) -> bool:
        """Whether a protocol 5 buffer stays in the stream; if not, it is a piece (copied)."""
        view = buffer.raw()
        if not self.split or view.nbytes <= OUT_OF_BAND:
            return True
        self.pieces.append(view.tobytes())
        self.kinds.append(BUFFER if view.readonly else WRITABLE_BUFFER)
        return False

    def pickled(self, stream: bytes) -> bytes | Pickled:
        if not self.pieces:
            return stream
        return Pickled(stream, tuple(self.pieces), tuple(self.kinds))


class _FastPickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, collector: _CollectPromises) -> None:
        super().__init__(file, PROTOCOL, buffer_callback=collector.buffer)
        self.persistent_id = collector.persistent_id  # type: ignore[method-assign]


def _save_module(pickler: Any, module: types.ModuleType) -> None:
    """Modules travel by name, except a script's or notebook's `__main__`.

    (dill would save the namespace of any module outside site-packages by value.)
    """
    if module.__name__ == "__main__":
        _DILL_SAVE_MODULE(pickler, module)
    else:
        pickler.save_reduce(importlib.import_module, (module.__name__,), obj=module)


_DILL_SAVE_MODULE = dill.Pickler.dispatch[types.ModuleType]


class _DillPickler(dill.Pickler):
    dispatch = dill.Pickler.dispatch.copy()
    dispatch[types.ModuleType] = _save_module

    def __init__(self, file: io.BytesIO, collector: _CollectPromises | None = None) -> None:
        super().__init__(file, PROTOCOL, recurse=True,
                         buffer_callback=None if collector is None else collector.buffer)
        self._collector = collector

    def persistent_id(self, obj: Any) -> int | None:
        return None if self._collector is None else self._collector.persistent_id(obj)


def _is_plain(obj: Any) -> bool:
    kind = type(obj)
    if kind in _PLAIN:
        return kind is not bytes or len(obj) <= OUT_OF_BAND
    if kind in (list, tuple):
        return len(obj) < 64 and all(type(x) in _PLAIN and (type(x) is not bytes
                                                            or len(x) <= OUT_OF_BAND)
                                     for x in obj)
    return False


@overload
def dumps(obj: Any, promise_type: type | None = None, *,
          split: Literal[False] = False) -> tuple[bytes, list[Any]]: ...
@overload
def dumps(obj: Any, promise_type: type | None = None, *,
          split: bool) -> tuple[bytes | Pickled, list[Any]]: ...
def dumps(obj: Any, promise_type: type | None = None, *,
          split: bool = False) -> tuple[bytes | Pickled, list[Any]]:
    """`obj` as bytes, and the promises found in it in slot order. With `split`, a value
    holding buffers longer than `OUT_OF_BAND` is a `Pickled`, its buffers beside its stream
    (fntree/runtime/pickled.py): the process that made it stores it out of line.

    Raises `SerializationError` naming the type that cannot be saved.
    """
    if _is_plain(obj):  # no promise can hide in plain data: the common value, fast
        return pickle.dumps(obj, PROTOCOL), []
    collector = _CollectPromises(promise_type, split)
    buffer = io.BytesIO()
    try:
        _FastPickler(buffer, collector).dump(obj)
        data = buffer.getvalue()
        if _MAIN_MARKER not in data:
            return collector.pickled(data), collector.found
    except (pickle.PicklingError, TypeError, AttributeError):
        pass
    collector = _CollectPromises(promise_type, split)
    buffer = io.BytesIO()
    try:
        _DillPickler(buffer, collector).dump(obj)
    except Exception as exc:
        raise SerializationError(
            f"a {type(obj).__name__} cannot be serialized ({type(exc).__name__}: {exc})"
        ) from exc
    return collector.pickled(buffer.getvalue()), collector.found


class _SlotUnpickler(pickle.Unpickler):
    """Fills promise slots from `slot_values` and out-of-band pieces from `loaded`."""

    def __init__(self, file: io.BytesIO, slot_values: Sequence[Any],
                 objects: ObjectStore | None, loaded: Loaded | None = None) -> None:
        super().__init__(file, buffers=None if loaded is None else loaded.buffers)
        self.slot_values = slot_values
        self.objects = objects
        self.pieces = () if loaded is None else loaded.pieces

    def persistent_load(self, pid: Any) -> Any:
        if pid < 0:
            return self.pieces[-1 - pid]
        return decode_value(self.slot_values[pid], self.objects)


def loads(data: bytes | ObjectRef | Pickled, slot_values: Sequence[Any] = (),
          objects: ObjectStore | None = None) -> Any:
    """The object saved by `dumps`, its promise slots filled from `slot_values`."""
    if isinstance(data, ObjectRef):
        return _load_object(data, objects, slot_values)
    if isinstance(data, Pickled):
        return _SlotUnpickler(io.BytesIO(data.stream), slot_values, objects,
                              data.loaded()).load()
    if not slot_values:
        return pickle.loads(data)
    return _SlotUnpickler(io.BytesIO(data), slot_values, objects).load()


def _load_object(ref: ObjectRef, objects: ObjectStore | None,
                 slot_values: Sequence[Any] = ()) -> Any:
    """The object stored out of line as `ref`: a whole pickle, or a `Pickled`'s pieces."""
    if objects is None:
        raise SerializationError("a value stored out of line in a job store is read without "
                                 "the store; pass the job store's objects")
    loaded = objects.load(ref)
    if not loaded.pieces and not loaded.buffers and not slot_values:
        return pickle.loads(loaded.stream)
    return _SlotUnpickler(io.BytesIO(loaded.stream), slot_values, objects, loaded).load()


def encode_value(value: Any) -> bytes:
    """A target's value as bytes (no promises allowed inside)."""
    return dumps(value)[0]


def decode_value(value: bytes | ObjectRef | Collected,
                 objects: ObjectStore | None = None) -> Any:
    """The Python value of a stored value: bytes, a reference to bytes in `objects`,
    or a `Collected` list of them.

    Collected values nest as deep as the tree of children-only chains did, so the
    lists are built without recursion.
    """
    if isinstance(value, ObjectRef):
        return _load_object(value, objects)
    if not isinstance(value, Collected):
        return pickle.loads(value)
    top: list[Any] = []
    stack = [(value.values, top)]
    while stack:
        values, out = stack.pop()
        for item in values:
            if type(item) is Collected:
                inner: list[Any] = []
                out.append(inner)
                stack.append((item.values, inner))
            elif type(item) is ObjectRef:
                out.append(_load_object(item, objects))
            else:
                out.append(pickle.loads(item))
    return top


def dumps_function(obj: Any) -> tuple[bytes, bytes]:
    """(key, bytes) for a target: by reference when importable, else by value."""
    buffer = io.BytesIO()
    try:
        _DillPickler(buffer).dump(obj)
        data = buffer.getvalue()
    except Exception as exc:
        raise SerializationError(f"{obj!r} cannot be serialized ({type(exc).__name__}: {exc})"
                                 ) from exc
    return hashlib.blake2b(data, digest_size=8).digest(), data
