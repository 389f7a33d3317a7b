"""Tests of fntree.runtime.codec: values, promise slots, by-value functions and errors."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
import textwrap
from fractions import Fraction

import pytest

import fntree
from fntree.runtime import codec
from fntree.runtime.records import Collected


class Promise:
    """A stand-in promise type: codec knows nothing of what a promise is."""

    def __init__(self, name):
        self.name = name


class SubPromise(Promise):
    """A subclass is not the promise type itself."""


# -- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        0, -7, 2**100, 1.5, "text", "", b"bytes", None, True,
        [1, "a", None], (1, 2), {"a": [1, {"b": (2, 3)}]}, {1, 2}, frozenset({"x"}),
        list(range(200)), Fraction(1, 3), {"k": "__main__"},
    ],
)
def test_dumps_and_loads_round_trip(value):
    """Whatever dumps saves, loads gives back equal, with no promises found."""
    data, promises = codec.dumps(value)
    assert isinstance(data, bytes)
    assert promises == []
    assert codec.loads(data) == value


def test_plain_data_takes_the_c_pickler():
    """An importable object is saved exactly as pickle saves it, without dill."""
    value = {"when": Fraction(2, 7), "items": [1, 2, 3]}
    assert codec.dumps(value)[0] == pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def test_encode_and_decode_value_round_trip():
    """encode_value and decode_value are inverses for a target's value."""
    value = {"rows": [(1, "a"), (2, "b")]}
    assert codec.decode_value(codec.encode_value(value)) == value


def test_modules_travel_by_name():
    """A module inside a value is saved by name and loads as the same module."""
    data, _ = codec.dumps({"module": json})
    assert codec.loads(data)["module"] is json


# -- promises ------------------------------------------------------------------------


def test_promises_are_found_in_slot_order():
    """dumps with a promise type returns each promise once, in the order first met."""
    a, b = Promise("a"), Promise("b")
    data, promises = codec.dumps({"x": [a, b, a], "y": (b,)}, Promise)
    assert len(promises) == 2
    assert promises[0] is a
    assert promises[1] is b
    assert isinstance(data, bytes)


def test_promise_slots_are_filled_from_slot_values():
    """loads fills slot i with the decoded slot_values[i], wherever the promise was."""
    a, b = Promise("a"), Promise("b")
    data, _ = codec.dumps(([a, b, a], {"y": (b,)}), Promise)
    filled = codec.loads(data, [codec.encode_value(1), codec.encode_value("two")])
    assert filled == ([1, "two", 1], {"y": ("two",)})


def test_a_collected_slot_value_is_filled_as_a_list():
    """A slot whose value is a Collected is filled with the list of its decoded values."""
    a = Promise("a")
    data, _ = codec.dumps([a], Promise)
    collected = Collected((codec.encode_value(1), codec.encode_value(2)))
    assert codec.loads(data, [collected]) == [[1, 2]]


def test_only_the_exact_promise_type_is_a_promise():
    """Instances of a subclass of the promise type are saved as ordinary objects."""
    data, promises = codec.dumps([SubPromise("s")], Promise)
    assert promises == []
    assert codec.loads(data)[0].name == "s"


def test_promises_in_a_value_saved_through_dill_are_found():
    """Promises are found also when the value needs dill (here, next to a lambda)."""
    a = Promise("a")
    data, promises = codec.dumps([a, lambda: 5], Promise)
    assert promises == [a]
    filled, function = codec.loads(data, [codec.encode_value("A")])
    assert filled == "A"
    assert function() == 5


# -- by value through dill -----------------------------------------------------------


def test_a_lambda_round_trips():
    """A lambda, which the C pickler refuses, is saved by value and still runs."""
    data, _ = codec.dumps(lambda x: x * x)
    assert codec.loads(data)(7) == 49


def test_a_closure_round_trips_with_its_captured_values():
    """A nested function keeps the values it closed over."""
    offset = 3

    def add(x):
        return x + offset

    data, _ = codec.dumps(add)
    assert codec.loads(data)(4) == 7


class Point:
    def __init__(self, x):
        self.x = x


def test_an_object_of_main_is_saved_by_value_not_by_reference(monkeypatch):
    """An object the C pickler would save as a reference into __main__ goes through dill."""
    main = sys.modules["__main__"]
    monkeypatch.setattr(Point, "__module__", "__main__")
    monkeypatch.setattr(main, "Point", Point, raising=False)
    assert b"__main__" in pickle.dumps(Point(1), pickle.HIGHEST_PROTOCOL)
    data, _ = codec.dumps(Point(5))
    assert data != pickle.dumps(Point(5), pickle.HIGHEST_PROTOCOL)
    monkeypatch.delattr(main, "Point")
    assert codec.loads(data).x == 5


def test_objects_of_a_scripts_main_load_in_another_process(tmp_path):
    """A class and a function defined in a script's __main__ load in a process without them."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent("""
        import json
        import sys

        from fntree.runtime import codec

        class Point:
            def __init__(self, x):
                self.x = x

            def norm(self):
                return abs(self.x)

        def encode(value):
            return json.dumps(value)

        data, _ = codec.dumps((Point(-3), encode))
        sys.stdout.buffer.write(data)
    """))
    data = subprocess.run([sys.executable, str(script)], capture_output=True, check=True,
                          cwd=tmp_path).stdout
    point, encode = codec.loads(data)
    assert point.norm() == 3
    assert encode([1, "a"]) == '[1, "a"]'


# -- errors --------------------------------------------------------------------------


def test_an_unpicklable_object_raises_serialization_error():
    """dumps of something neither pickler can save raises SerializationError naming its type."""
    with pytest.raises(fntree.SerializationError) as info:
        codec.dumps({"gen": (i for i in range(3))})
    assert isinstance(info.value, TypeError)
    assert "a dict cannot be serialized" in str(info.value)
    assert "generator" in str(info.value)


def test_a_call_inside_a_value_cannot_be_encoded():
    """encode_value of a value holding a Call raises SerializationError saying how to pass it."""

    @fntree.target
    def leaf(x):
        return x

    with pytest.raises(fntree.SerializationError, match="cannot be stored inside a value"):
        codec.encode_value([leaf(1)])


# -- stored values -------------------------------------------------------------------


def test_decode_value_of_collected_is_a_list():
    """decode_value of a Collected is the list of its decoded values, nested ones too."""
    inner = Collected((codec.encode_value("x"),))
    value = Collected((codec.encode_value(1), inner, codec.encode_value({"k": 2})))
    assert codec.decode_value(value) == [1, ["x"], {"k": 2}]
    assert codec.decode_value(Collected(())) == []


# -- functions -----------------------------------------------------------------------


@fntree.target
def module_target(x):
    return x + 1


def test_dumps_function_keys_its_bytes():
    """dumps_function returns an 8-byte blake2b key of the bytes, the same every time."""
    key, data = codec.dumps_function(module_target)
    assert key == hashlib.blake2b(data, digest_size=8).digest()
    assert codec.dumps_function(module_target) == (key, data)


def test_dumps_function_saves_an_importable_target_by_reference():
    """An importable target's bytes load as the same target."""
    _, data = codec.dumps_function(module_target)
    assert pickle.loads(data) is module_target


def test_dumps_function_of_an_unpicklable_object_raises():
    """dumps_function raises SerializationError for what cannot be saved."""
    with pytest.raises(fntree.SerializationError, match="cannot be serialized"):
        codec.dumps_function(i for i in range(3))


# -- depth ---------------------------------------------------------------------------


def test_collected_values_nested_100000_deep_pickle_and_decode_without_recursion():
    """Nested Collected values (children-only chains) pickle flat and decode into nested lists."""
    leaf = codec.encode_value(7)
    value = Collected((leaf,))
    for _ in range(100_000):
        value = Collected((codec.encode_value("x"), value, Collected(())))
    copy = pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
    decoded = codec.decode_value(copy)
    for _ in range(100_000):
        assert copy.values[0] == value.values[0] and copy.values[2] == Collected(())
        assert decoded[0] == "x" and decoded[2] == []
        copy, value, decoded = copy.values[1], value.values[1], decoded[1]
    assert copy == value == Collected((leaf,)) and decoded == [7]


def test_a_flat_collected_value_pickles_as_before():
    """A Collected value with no Collected inside keeps the plain pickled form."""
    value = Collected((b"a", b"b"))
    assert pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL)) == value
    assert b"_unflatten" not in pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
