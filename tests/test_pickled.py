"""Long values pickled in pieces: their large buffers stored beside the stream, uncopied."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import value_workflows as vw

import fntree
from fntree.dsl import Call
from fntree.runtime import codec
from fntree.runtime.objects import DamagedObject, ObjectStore, out_of_line
from fntree.runtime.pickled import MAGIC, OUT_OF_BAND, Pickled
from fntree.runtime.records import O_VALUE

LONG = 3 * OUT_OF_BAND


def _stored(value: object, tmp_path: Path) -> tuple[ObjectStore, object]:
    objects = ObjectStore(tmp_path / "objects")
    data, _ = codec.dumps(value, Call, split=True)
    return objects, out_of_line((O_VALUE, data), objects)[1]


def test_large_buffers_travel_beside_the_stream_uncopied() -> None:
    """A long `bytes` in a value is a piece of its pickle, the very object, not a copy."""
    block = vw.blob(LONG, 1)
    data, promises = codec.dumps({"block": block, "n": 1}, Call, split=True)
    assert type(data) is Pickled and promises == []
    assert data.pieces[0] is block and len(data.stream) < 100


def test_values_of_every_kind_come_back_with_their_types(tmp_path: Path) -> None:
    """bytes, bytearray, and a bytes held twice come back exact, of their own types."""
    block, mutable = vw.blob(LONG, 2), bytearray(vw.blob(LONG, 3))
    value = {"a": block, "b": mutable, "again": block, "small": b"x" * 10}
    objects, ref = _stored(value, tmp_path)
    assert (objects.path(ref).read_bytes()[:4]) == MAGIC  # type: ignore[arg-type]
    back = codec.decode_value(ref, objects)  # type: ignore[arg-type]
    assert back == value
    assert type(back["a"]) is bytes and type(back["b"]) is bytearray
    assert back["a"] is back["again"]


def test_a_bytearray_changed_after_the_call_does_not_change_the_call() -> None:
    """Mutable buffers are copied when the call is made, as an in-band pickle would."""
    mutable = bytearray(LONG)
    data, _ = codec.dumps(((mutable,), {}), Call, split=True)
    mutable[0] = 1
    assert codec.loads(data)[0][0] == bytearray(LONG)


def test_a_flipped_bit_in_a_piece_is_detected(tmp_path: Path) -> None:
    """A bit flipped in an out-of-band piece is a DamagedObject, never a value."""
    objects, ref = _stored([vw.blob(LONG, 4)], tmp_path)
    path = objects.path(ref)  # type: ignore[arg-type]
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 1
    os.chmod(path, 0o600)
    path.write_bytes(raw)
    with pytest.raises(DamagedObject, match="damaged"):
        codec.decode_value(ref, objects)  # type: ignore[arg-type]


def test_a_header_that_lies_about_its_pieces_is_detected(tmp_path: Path) -> None:
    """A header whose lengths do not add up to the file is damage, not a huge read."""
    objects, ref = _stored([vw.blob(LONG, 5)], tmp_path)
    path = objects.path(ref)  # type: ignore[arg-type]
    raw = bytearray(path.read_bytes())
    raw[9:17] = (2**62).to_bytes(8, "little")  # the first piece's length
    path.write_bytes(raw)
    with pytest.raises(DamagedObject, match="damaged"):
        codec.decode_value(ref, objects)  # type: ignore[arg-type]


def test_a_pickled_value_crosses_a_process_boundary_intact(tmp_path: Path) -> None:
    """A `Pickled` pickled in band (an isolated job's outcome) stores the same object."""
    data, _ = codec.dumps([vw.blob(LONG, 6)], Call, split=True)
    assert isinstance(data, Pickled)
    again = pickle.loads(pickle.dumps(data, pickle.HIGHEST_PROTOCOL))
    objects = ObjectStore(tmp_path / "objects")
    assert objects.put(again) == objects.put(data)


def test_long_arguments_and_values_round_trip_through_a_run(store: Path) -> None:
    """A long bytes argument and a long bytearray value come back exact from a run."""
    data = vw.blob(LONG, 7)
    assert fntree.run(vw.echo(data), jobstore=store) == data
    assert fntree.run(vw.echo(bytearray(data)), jobstore=store.with_name("b")) == bytearray(data)


class _Promise:
    """A stand-in promise type: codec finds instances of whatever type it is given."""


def test_promises_and_long_buffers_share_one_pickle(tmp_path: Path) -> None:
    """Promise slots and out-of-band pieces are filled side by side, stored or not."""
    block = vw.blob(LONG, 8)
    data, promises = codec.dumps(((_Promise(), block), {}), _Promise, split=True)
    assert type(data) is Pickled and len(promises) == 1
    slot_values = [codec.encode_value(42)]
    assert codec.loads(data, slot_values) == ((42, block), {})
    objects = ObjectStore(tmp_path / "objects")
    ref = objects.put(data)
    assert codec.loads(ref, slot_values, objects) == ((42, block), {})
