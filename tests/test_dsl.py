"""Tests of fntree.dsl: `@target`, `Call`, promises and the directives a body returns."""

from __future__ import annotations

import pickle
import threading

import pytest

import fntree
from fntree import dsl
from fntree.resources import Resources
from fntree.runtime import codec

CALLS: list[object] = []


@fntree.target
def record(x):
    """Append `x` to CALLS: a call that ran leaves a trace."""
    CALLS.append(x)
    return x


@fntree.target
def pair(*args, **kwargs):
    return args, kwargs


def _values(*values):
    return [codec.encode_value(v) for v in values]


# -- @target -------------------------------------------------------------------------


def test_bare_target_has_default_resources_and_the_functions_name():
    """`@fntree.target` without arguments makes a Target named after the function."""
    assert isinstance(record, fntree.Target)
    assert record.name == "record"
    assert record.resources == Resources()


def test_target_with_empty_parentheses_is_like_the_bare_form():
    """`@fntree.target()` makes a Target with default resources."""

    @fntree.target()
    def job():
        return 1

    assert isinstance(job, fntree.Target)
    assert job.resources == Resources()


def test_target_takes_keyword_resources_and_a_name():
    """time=, memory=, cpu=, retries= and name= are parsed into the target."""

    @fntree.target(time="10m", memory="2G", cpu=4, retries=2, name="sorter")
    def job():
        return 1

    assert job.name == "sorter"
    assert job.resources == Resources(time=600.0, memory=2 * 1024**3, cpu=4.0, retries=2)


def test_target_takes_time_memory_and_cpu_positionally():
    """`@fntree.target("1h", "512M", 2)` means time, memory and cpu in that order."""

    @fntree.target("1h", "512M", 2)
    def job():
        return 1

    assert job.resources == Resources(time=3600.0, memory=512 * 1024**2, cpu=2.0)


def test_target_takes_time_alone_positionally():
    """A single positional value that is not a function is the time."""

    @fntree.target(90)
    def job():
        return 1

    assert job.resources.time == 90.0
    assert job.resources.memory is None


def test_target_refuses_more_than_three_positional_values():
    """A fourth positional value raises ResourceError naming time, memory, cpu."""
    with pytest.raises(fntree.ResourceError, match="time, memory, cpu"):
        fntree.target("1h", "1G", 1, 3)


@pytest.mark.parametrize(
    "kwargs", [{"time": "-1h"}, {"memory": "lots"}, {"cpu": 0}, {"retries": -2}, {"name": ""}],
)
def test_a_bad_decorator_argument_raises_when_the_decorator_runs(kwargs):
    """A bad resource or name raises ResourceError at `@target(...)`, before any call."""
    with pytest.raises(fntree.ResourceError):
        fntree.target(**kwargs)


def test_a_bad_positional_value_raises_when_the_decorator_runs():
    """A bad positional memory raises ResourceError naming memory."""
    with pytest.raises(fntree.ResourceError, match=r"^memory="):
        fntree.target("1h", "-1G")


def test_target_decorates_only_functions():
    """`@target(...)` applied to a non-function or a target raises TypeError."""
    decorate = fntree.target(time="1m")
    with pytest.raises(TypeError, match="decorates a function, not int"):
        decorate(3)
    with pytest.raises(TypeError, match="not Target"):
        decorate(record)


def test_wrapped_is_the_plain_function():
    """`target.__wrapped__` is the undecorated function, callable directly."""
    assert not isinstance(pair.__wrapped__, fntree.Target)
    assert pair.__wrapped__(1, k=2) == ((1,), {"k": 2})
    assert pair.__name__ == "pair"
    assert record.__doc__ == "Append `x` to CALLS: a call that ran leaves a trace."


# -- calls ---------------------------------------------------------------------------


def test_calling_a_target_returns_a_call_and_runs_nothing():
    """Calling a target makes a Call holding it, its resources and its arguments; no body runs."""
    before = len(CALLS)
    call = record(7)
    assert isinstance(call, fntree.Call)
    assert call.target is record
    assert call.resources == record.resources
    assert call.deps == []
    assert codec.loads(call.args) == ((7,), {})
    assert len(CALLS) == before


def test_call_serializes_its_arguments_at_the_call():
    """Changing a mutable argument after the call does not change the call's arguments."""
    items = [1, 2]
    call = pair(items, key={"a": 1})
    items.append(3)
    assert codec.loads(call.args) == (([1, 2],), {"key": {"a": 1}})


def test_options_overrides_resources_for_one_call_only():
    """`.options(...)` gives a target with changed resources; the original is unchanged."""
    fast = record.options(time="30s", memory="1G")
    call = fast(1)
    assert call.resources == Resources(time=30.0, memory=1024**3)
    assert fast.name == "record"
    assert record.resources == Resources()
    assert record(1).resources == Resources()


def test_options_rejects_a_bad_or_unknown_resource():
    """`.options` raises ResourceError for a bad value or an unknown resource name."""
    with pytest.raises(fntree.ResourceError, match=r"^cpu="):
        record.options(cpu=-1)
    with pytest.raises(fntree.ResourceError, match="'gpu'"):
        record.options(gpu=1)


def test_options_shares_the_function_that_workers_load():
    """A target with changed options pickles to the same function key as its original."""
    assert record.options(cpu=2).options(memory="1G").pickled() == record.pickled()


def test_an_importable_target_pickles_by_reference():
    """A module-level target unpickles to the very same Target object."""
    assert pickle.loads(pickle.dumps(record)) is record


def test_a_local_target_travels_by_value():
    """A target defined inside a function still runs after a round trip through its bytes."""
    offset = 10

    @fntree.target
    def shifted(x):
        return x + offset

    _key, data = shifted.pickled()
    loaded = pickle.loads(data)
    assert loaded.name == "shifted"
    assert loaded.fn(5) == 15


def test_an_unpicklable_argument_raises_at_the_call():
    """A value that cannot be sent raises SerializationError naming the target and its type."""
    generator = (i for i in range(3))
    with pytest.raises(fntree.SerializationError) as info:
        pair(1, generator)
    message = str(info.value)
    assert "argument 2" in message
    assert "`pair`" in message
    assert "generator" in message
    assert isinstance(info.value, TypeError)


def test_an_unpicklable_keyword_argument_is_named():
    """A keyword argument that cannot be sent is named by its keyword."""
    with pytest.raises(fntree.SerializationError, match=r"argument lock_free= of target `pair`"):
        pair(1, lock_free=(i for i in range(3)))


def test_a_lock_argument_travels_through_dill():
    """A threading.Lock, which the C pickler refuses, is sent by value as a fresh lock."""
    call = pair(threading.Lock())
    (lock,), _ = codec.loads(call.args)
    assert lock.acquire(blocking=False)


def test_a_call_cannot_be_pickled_inside_a_value():
    """Pickling a Call raises SerializationError telling how to pass it instead."""
    with pytest.raises(fntree.SerializationError, match="cannot be stored inside a value"):
        pickle.dumps(record(1))


# -- promises ------------------------------------------------------------------------


def test_a_call_among_the_arguments_is_a_promise():
    """A Call passed directly as an argument is listed in the new call's deps."""
    a = record(1)
    call = pair(a, 2)
    assert call.deps == [a]
    assert codec.loads(call.args, _values("A")) == (("A", 2), {})


def test_calls_nested_in_containers_are_promises_in_order():
    """Calls inside a list, a tuple and a dict are deps in the order of the arguments."""
    a, b, c = record(1), record(2), record(3)
    call = pair([a], (b, 5), key={"c": c})
    assert len(call.deps) == 3
    assert all(dep is want for dep, want in zip(call.deps, (a, b, c), strict=True))
    args = codec.loads(call.args, _values("A", "B", "C"))
    assert args == ((["A"], ("B", 5)), {"key": {"c": "C"}})


def test_one_call_promised_twice_in_one_call_is_one_dep():
    """The same Call in two argument places is one dep filling both places."""
    a = record(1)
    call = pair(a, [a])
    assert call.deps == [a]
    assert codec.loads(call.args, _values(9)) == ((9, [9]), {})


# -- directives ----------------------------------------------------------------------


def test_children_holds_the_calls_and_no_follow_on():
    """`fntree.children(a, b)` is a Spawn of a and b with no follow-on."""
    a, b = record(1), record(2)
    spawn = fntree.children(a, b)
    assert isinstance(spawn, fntree.Spawn)
    assert spawn.children == (a, b)
    assert spawn.follow is None


def test_children_flattens_lists_and_generators():
    """Lists, tuples and generators of calls given to children are flattened in order."""
    calls = [record(i) for i in range(5)]
    spawn = fntree.children(calls[:2], (calls[2],), (c for c in calls[3:4]), calls[4])
    assert spawn.children == tuple(calls)


def test_then_adds_the_follow_on_without_changing_the_spawn():
    """`.then(f)` returns a new Spawn with the same children and f as follow-on."""
    a, f = record(1), pair(0)
    spawn = fntree.children(a)
    followed = spawn.then(f)
    assert followed.children == (a,)
    assert followed.follow is f
    assert spawn.follow is None


def test_a_second_then_raises_compile_error():
    """A job has at most one follow-on: a second `.then` raises CompileError naming the first."""
    spawn = fntree.children(record(1)).then(pair(2))
    with pytest.raises(fntree.CompileError, match=r"at most one follow-on.*`pair`"):
        spawn.then(record(3))


def test_follow_on_is_a_spawn_with_no_children():
    """`fntree.follow_on(f)` is a Spawn with no children and f as follow-on."""
    f = record(1)
    spawn = fntree.follow_on(f)
    assert spawn.children == ()
    assert spawn.follow is f


def test_a_target_given_as_a_child_is_refused_with_a_remedy():
    """Passing a target instead of a call to children raises CompileError showing the fix."""
    with pytest.raises(fntree.CompileError) as info:
        fntree.children(record(1), record)
    assert "the child `record` is a target, not a call of it" in str(info.value)
    assert "record(...)" in str(info.value)


@pytest.mark.parametrize("value", [3, "record", None, 2.5])
def test_a_non_call_given_as_a_child_is_refused(value):
    """Passing something that is not a call to children raises CompileError naming its type."""
    with pytest.raises(fntree.CompileError, match=f"not a {type(value).__name__}$"):
        fntree.children(value)


@pytest.mark.parametrize("value", [record, 3])
def test_a_non_call_given_as_a_follow_on_is_refused(value):
    """follow_on and then refuse a target or a non-call with CompileError."""
    with pytest.raises(fntree.CompileError, match="follow-on"):
        fntree.follow_on(value)
    with pytest.raises(fntree.CompileError, match="follow-on"):
        fntree.children(record(1)).then(value)


def test_compile_error_is_a_type_error_and_a_fntree_error():
    """CompileError can be caught as TypeError and as FntreeError."""
    assert issubclass(fntree.CompileError, TypeError)
    assert issubclass(fntree.CompileError, fntree.FntreeError)
    assert issubclass(fntree.SerializationError, TypeError)
    assert issubclass(fntree.SerializationError, fntree.FntreeError)


# -- context -------------------------------------------------------------------------


def test_context_outside_a_target_raises():
    """`fntree.context()` outside a running target raises FntreeError saying where to call it."""
    with pytest.raises(fntree.FntreeError, match="only available inside a running target"):
        fntree.context()


def test_slurm_args_per_target_and_per_call():
    """slurm_args is kept per target, overridden per call, and carried into the job's spec."""
    from fntree.compiler import root_spec

    @fntree.target(slurm_args="--qos=long")
    def heavy():
        return 1

    assert heavy().resources.slurm_args == "--qos=long"
    call = heavy.options(slurm_args=["--gres=gpu:1", "--comment=a b"])()
    assert call.resources.slurm_args == "--gres=gpu:1 '--comment=a b'"
    spec, _ = root_spec(call)
    assert spec.res.slurm_args == "--gres=gpu:1 '--comment=a b'"
    with pytest.raises(fntree.ResourceError, match=r"slurm_args.*quotes"):
        fntree.target(slurm_args='--comment="unclosed')
    with pytest.raises(fntree.ResourceError, match="slurm_args"):
        fntree.target(slurm_args=3)


# -- a call is not yet a value ---------------------------------------------------------


def test_formatting_a_call_raises_that_it_is_not_yet_a_value():
    """str(), format() and f-strings (with a format spec too) of a call raise; repr stays."""
    call = record(5)
    for attempt in (lambda: str(call), lambda: f"result is {call}", lambda: format(call, ">9"),
                    lambda: f"{call:>9}"):
        with pytest.raises(fntree.CompileError, match=r"the call `record\(...\)` made at "
                                                      r".*test_dsl.py:\d+ is not yet a value"):
            attempt()
    assert repr(call) == "<fntree call record(...)>"
    assert f"{call!r}" == "<fntree call record(...)>"


def test_a_call_keeps_the_file_and_line_that_made_it():
    """`Call.site` is where the target was called, also through `.options(...)`."""
    here = __file__
    line = test_a_call_keeps_the_file_and_line_that_made_it.__code__.co_firstlineno
    plain = record(1)
    changed = record.options(cpu=2)(1)
    assert plain.site == (here, line + 4)
    assert changed.where() == f"{here}:{line + 5}"


def test_made_calls_lists_the_calls_of_a_block_and_nests():
    """Calls made inside `made_calls()` are listed in order; an inner block restores the outer."""
    before = record(0)
    with dsl.made_calls() as outer:
        first = record(1)
        with dsl.made_calls() as inner:
            second = record(2)
        third = pair(first, 3)
    assert outer == [first, third] and inner == [second]
    assert before not in outer
    assert dsl._made is None
