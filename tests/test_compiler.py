"""Tests of fntree.compiler: `lower` and `root_spec` as pure functions on directives."""

from __future__ import annotations

import pickle

import pytest
import shape_workflows as sw

import fntree
from fntree.compiler import build_value, execute, lower, root_spec
from fntree.runtime import codec
from fntree.runtime.records import (
    CHILD,
    DEP,
    FOLLOW_ON,
    O_SPAWN,
    O_VALUE,
    ROOT_ID,
    Res,
    Spec,
    derive_id,
)

JOB = 1234


@fntree.target
def leaf(x):
    return x


@fntree.target("1h", "1G", 2, retries=3)
def combine(*args):
    return args


def _all_specs(specs):
    """Every spec in `specs` and, depth first, in their deps."""
    for spec in specs:
        yield spec
        yield from _all_specs(spec.deps)


def _fill(spec, values):
    """The arguments of `spec` with its slots filled from its predecessor's child values."""
    return codec.loads(spec.args, [codec.encode_value(values[i]) for i in spec.slots])


# -- values --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [42, "text", None, [1, 2], {"a": (1, 2.5)}, b"raw"])
def test_a_plain_value_is_the_jobs_value(value):
    """A body returning a plain value lowers to (O_VALUE, its bytes) and names no function."""
    outcome, fns = lower(JOB, value)
    assert outcome[0] == O_VALUE
    assert len(outcome) == 2
    assert isinstance(outcome[1], bytes)
    assert codec.decode_value(outcome[1]) == value
    assert fns == {}


def test_a_value_holding_calls_becomes_a_value_follow_on():
    """`return [f(1), f(2)]` runs both calls as children and builds the list in a follow-on."""
    outcome, fns = lower(JOB, [leaf(1), leaf(2)])
    kind, children, follow = outcome
    assert kind == O_SPAWN
    assert [c.name for c in children] == ["leaf", "leaf"]
    assert [codec.loads(c.args) for c in children] == [((1,), {}), ((2,), {})]
    assert follow.name == "value"
    assert follow.fn_key == build_value.pickled()[0]
    assert follow.slots == (0, 1)
    assert set(fns) == {build_value.pickled()[0], leaf.pickled()[0]}
    args, kwargs = _fill(follow, ["one", "two"])
    assert build_value.fn(*args, **kwargs) == ["one", "two"]


# -- tail calls ----------------------------------------------------------------------


def test_a_bare_call_is_a_follow_on_with_no_children():
    """Returning a call lowers to a spawn with no children and that call as follow-on."""
    outcome, fns = lower(JOB, combine("x", 3))
    assert outcome[0] == O_SPAWN
    assert outcome[1] == ()
    follow = outcome[2]
    assert follow == Spec(
        job_id=derive_id(JOB, FOLLOW_ON, 0),
        name="combine",
        fn_key=combine.pickled()[0],
        args=follow.args,
        res=Res(time=3600.0, memory=1024**3, cpu=2.0, retries=3),
        slots=(),
        deps=(),
    )
    assert codec.loads(follow.args) == (("x", 3), {})
    assert fns == {combine.pickled()[0]: combine.pickled()[1]}


def test_follow_on_directive_lowers_like_a_bare_call():
    """`fntree.follow_on(f)` lowers exactly as returning `f` does."""
    assert lower(JOB, fntree.follow_on(leaf(5))) == lower(JOB, leaf(5))


def test_a_tail_call_with_a_promise_runs_the_promise_as_a_child():
    """`return g(f(1))` makes f(1) a child and g the follow-on reading its value."""
    (_, children, follow), _ = lower(JOB, combine(leaf(1)))
    assert [c.name for c in children] == ["leaf"]
    assert children[0].job_id == derive_id(JOB, CHILD, 0)
    assert follow.slots == (0,)
    assert _fill(follow, ["v"]) == (("v",), {})


def test_options_resources_reach_the_spec():
    """A call of `target.options(...)` carries its changed resources into its Spec."""
    (_, _, follow), _ = lower(JOB, leaf.options(time="2m", cpu=0.5)(1))
    assert follow.res == Res(time=120.0, memory=None, cpu=0.5, retries=None)
    assert follow.fn_key == leaf.pickled()[0]


# -- children and follow-ons ---------------------------------------------------------


def test_children_then_follow_on_points_slots_at_the_children():
    """`children(a, b).then(f(b, a))` makes a, b children and f's slots index them."""
    a, b = leaf("a"), leaf("b")
    (kind, children, follow), fns = lower(JOB, fntree.children(a, b).then(combine(b, a)))
    assert kind == O_SPAWN
    assert [codec.loads(c.args) for c in children] == [(("a",), {}), (("b",), {})]
    assert [c.job_id for c in children] == [derive_id(JOB, CHILD, 0), derive_id(JOB, CHILD, 1)]
    assert follow.job_id == derive_id(JOB, FOLLOW_ON, 0)
    assert follow.slots == (1, 0)
    assert follow.deps == ()
    assert _fill(follow, ["A", "B"]) == (("B", "A"), {})
    assert set(fns) == {leaf.pickled()[0], combine.pickled()[0]}


def test_children_without_follow_on():
    """`children(a, b)` lowers to two child specs and no follow-on."""
    (kind, children, follow), _ = lower(JOB, fntree.children(leaf(1), leaf(2)))
    assert kind == O_SPAWN
    assert len(children) == 2
    assert follow is None


def test_no_children_and_no_follow_on():
    """`children()` lowers to an empty spawn."""
    outcome, fns = lower(JOB, fntree.children())
    assert outcome == (O_SPAWN, (), None)
    assert fns == {}


def test_promises_not_listed_become_extra_children():
    """A follow-on's promise that is not among the children is added after them."""
    a, extra = leaf("a"), leaf("extra")
    (_, children, follow), _ = lower(JOB, fntree.children(a).then(combine(extra, a)))
    assert [codec.loads(c.args)[0][0] for c in children] == ["a", "extra"]
    assert children[1].job_id == derive_id(JOB, CHILD, 1)
    assert follow.slots == (1, 0)
    assert _fill(follow, ["A", "E"]) == (("E", "A"), {})


def test_nested_promises_become_deps_of_the_child():
    """A child whose arguments hold calls gets them as deps, run first in its own chain."""
    inner = leaf("inner")
    (_, children, follow), _ = lower(JOB, fntree.children(combine(inner, 7)))
    assert follow is None
    (child,) = children
    assert child.name == "combine"
    assert child.slots == (0,)
    (dep,) = child.deps
    assert dep.name == "leaf"
    assert dep.job_id == derive_id(child.job_id, DEP, 0)
    assert codec.loads(dep.args) == (("inner",), {})
    assert _fill(child, ["I"]) == (("I", 7), {})


def test_deps_nest_to_any_depth():
    """Promises inside promises become deps of deps."""
    (_, (child,), _), _ = lower(JOB, fntree.children(combine(combine(leaf(0)))))
    (dep,) = child.deps
    (dep_of_dep,) = dep.deps
    assert dep.slots == (0,)
    assert dep_of_dep.name == "leaf"
    assert dep_of_dep.job_id == derive_id(dep.job_id, DEP, 0)


# -- each call runs once -------------------------------------------------------------


def test_a_call_listed_twice_among_children_is_refused():
    """Listing one call twice in children raises CompileError saying a call runs once."""
    a = leaf(1)
    with pytest.raises(fntree.CompileError, match=r"`leaf\(...\)` is listed twice"):
        lower(JOB, fntree.children(a, a))


def test_a_call_promised_by_two_children_is_refused():
    """A call promised in the arguments of two children raises CompileError."""
    a = leaf(1)
    with pytest.raises(fntree.CompileError, match=r"`leaf\(...\)` is used in two places"):
        lower(JOB, fntree.children(combine(a), combine(a)))


def test_a_call_that_is_a_child_and_a_childs_promise_is_refused():
    """A call listed as a child and also promised to another child raises CompileError."""
    a = leaf(1)
    with pytest.raises(fntree.CompileError, match="used in two places"):
        lower(JOB, fntree.children(a, combine(a)))


def test_a_call_promised_to_a_child_and_to_the_follow_on_is_refused():
    """A call promised both inside a child and to the follow-on raises CompileError."""
    a = leaf(1)
    with pytest.raises(fntree.CompileError, match="used in two places"):
        lower(JOB, fntree.children(combine(a)).then(combine(a)))


def test_the_follow_on_cannot_also_be_a_child():
    """The same call as child and follow-on raises CompileError."""
    a = leaf(1)
    with pytest.raises(fntree.CompileError, match="used in two places"):
        lower(JOB, fntree.children(a).then(a))


def test_a_child_shared_with_the_follow_on_is_one_job():
    """A listed child that the follow-on also promises is one child, not two."""
    a = leaf(1)
    (_, children, follow), _ = lower(JOB, fntree.children(a).then(combine(a, a)))
    assert len(children) == 1
    assert follow.slots == (0,)
    assert _fill(follow, ["A"]) == (("A", "A"), {})


def test_returning_a_target_is_refused():
    """Returning a target instead of a call raises CompileError showing the call to write."""
    with pytest.raises(fntree.CompileError, match=r"the target `leaf` itself.*return leaf\(...\)"):
        lower(JOB, leaf)


# -- ids -----------------------------------------------------------------------------


def _tree():
    """A fresh directive using children, an extra promise, deps and a follow-on."""
    a, b = leaf("a"), combine(leaf("dep"), 1)
    return fntree.children(a, b).then(combine(a, b, leaf("extra")))


def test_ids_are_deterministic():
    """Lowering the same structure twice, built afresh each time, gives identical outcomes."""
    first, first_fns = lower(JOB, _tree())
    second, second_fns = lower(JOB, _tree())
    assert first == second
    assert first_fns == second_fns


def test_ids_are_distinct_and_depend_on_the_parent():
    """Every job of one outcome has its own id, and another parent gives other ids."""
    (_, children, follow), _ = lower(JOB, _tree())
    ids = [s.job_id for s in _all_specs((*children, follow))]
    assert len(ids) == 5
    assert len(set(ids)) == 5
    (_, other_children, other_follow), _ = lower(JOB + 1, _tree())
    other = {s.job_id for s in _all_specs((*other_children, other_follow))}
    assert not other & set(ids)


def test_fns_hold_every_named_function():
    """The fns of an outcome map each spec's fn_key to bytes that load its target."""
    (_, children, follow), fns = lower(JOB, _tree())
    keys = {s.fn_key for s in _all_specs((*children, follow))}
    assert set(fns) == keys
    assert pickle.loads(fns[leaf.pickled()[0]]) is leaf
    assert pickle.loads(fns[combine.pickled()[0]]) is combine


# -- root ----------------------------------------------------------------------------


def test_root_spec_has_the_root_id_and_its_promises_as_deps():
    """root_spec gives the run's first job ROOT_ID and its promised calls as deps."""
    spec, fns = root_spec(combine(leaf(1), leaf(2)))
    assert spec.job_id == ROOT_ID
    assert spec.name == "combine"
    assert spec.slots == (0, 1)
    assert [d.job_id for d in spec.deps] == [derive_id(ROOT_ID, DEP, 0),
                                             derive_id(ROOT_ID, DEP, 1)]
    assert [codec.loads(d.args) for d in spec.deps] == [((1,), {}), ((2,), {})]
    assert set(fns) == {leaf.pickled()[0], combine.pickled()[0]}


def test_root_spec_of_a_plain_call():
    """A root call with no promises has no deps and no slots."""
    spec, _ = root_spec(leaf(3))
    assert spec.job_id == ROOT_ID
    assert spec.deps == ()
    assert spec.slots == ()
    assert codec.loads(spec.args) == ((3,), {})


@pytest.mark.parametrize("value", [leaf, 3, fntree.children()])
def test_root_spec_refuses_anything_but_a_call(value):
    """root_spec of a target, a value or a directive raises CompileError naming its type."""
    with pytest.raises(fntree.CompileError, match=f"not a {type(value).__name__}$"):
        root_spec(value)


# -- depth ---------------------------------------------------------------------------


def _spine(spec):
    """The specs along deps[0] from `spec` down, without recursion."""
    found = [spec]
    while found[-1].deps:
        found.append(found[-1].deps[0])
    return found


def test_a_static_promise_chain_of_10000_calls_lowers_and_pickles():
    """`inc(inc(...inc(0)...))` 10,000 calls deep lowers without recursion and survives pickle."""
    spec, fns = root_spec(sw.promise_chain(10_000))
    spine = _spine(spec)
    assert len(spine) == 10_000
    assert spine[0].job_id == ROOT_ID and spine[1].job_id == derive_id(ROOT_ID, DEP, 0)
    assert all(s.slots == (0,) for s in spine[:-1]) and spine[-1].slots == ()
    assert codec.loads(spine[-1].args) == ((0,), {})
    copy = _spine(pickle.loads(pickle.dumps(spec, pickle.HIGHEST_PROTOCOL)))
    assert [s._replace(deps=()) for s in copy] == [s._replace(deps=()) for s in spine]
    assert set(fns) == {sw.inc.pickled()[0]}


def test_a_body_returning_a_deep_promise_chain_lowers_it_as_a_child_with_deps():
    """A tail call whose promise nests 10,000 deep: one child, its deps nested below it."""
    (kind, children, follow), _ = lower(JOB, sw.promise_chain(10_000))
    assert kind == O_SPAWN and follow.slots == (0,) and len(children) == 1
    assert len(_spine(children[0])) == 9_999


def test_a_call_used_twice_deep_in_a_chain_is_refused():
    """The one-job-per-call rule holds at any depth of promises."""
    shared = sw.inc(0)
    call = sw.add(shared, 1)
    for _ in range(3000):
        call = sw.inc(call)
    with pytest.raises(fntree.CompileError, match="used in two places"):
        root_spec(sw.add(call, shared))


# -- calls a body made -----------------------------------------------------------------


def _execute(target, *args):
    return execute(target, args, {}, JOB)


def test_a_dropped_call_fails_the_job_naming_its_target_and_line():
    """`fntree.children(...).then(total(...))` without `return` is an error naming `total`."""
    with pytest.raises(fntree.CompileError) as info:
        _execute(sw.forgets_return, 3)
    message = str(info.value)
    assert "`forgets_return` made the call `total(...)`" in message
    assert sw.line_of("forgotten") in message
    assert "would never run" in message and "part(" not in message


def test_calls_that_are_listed_promised_nested_or_built_into_values_are_not_dropped():
    """Children, promises in arguments, calls made in helpers and calls inside values all run."""
    outcome, _ = _execute(sw.keeps_every_call, 3)
    assert outcome[0] == O_SPAWN
    outcome, _ = _execute(sw.root_returning_calls)
    assert outcome[0] == O_SPAWN and outcome[2].name == "value"
    outcome, _ = _execute(sw.returns_promise_chain, 2000)
    assert len(_spine(outcome[1][0])) == 1999


def test_every_dropped_call_is_named_once_through_the_call_it_was_passed_to():
    """Of dropped calls, those passed to another dropped call are named through it."""

    @fntree.target
    def drops_two() -> int:
        sw.add(sw.part(1), 2)
        sw.part(3)
        return 0

    with pytest.raises(fntree.CompileError, match=r"made 2 calls \(`add\(...\)` at .*, "
                                                  r"`part\(...\)` at .*\)"):
        _execute(drops_two)


def test_a_body_that_fails_is_not_charged_with_dropped_calls():
    """An exception from the body is the job's error, whatever calls it made before."""

    @fntree.target
    def fails() -> int:
        sw.part(1)
        raise ValueError("the body's own error")

    with pytest.raises(ValueError, match="the body's own error"):
        _execute(fails)
