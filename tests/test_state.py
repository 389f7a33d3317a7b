"""Tests of fntree.runtime.state: `apply(state, record)` as the chain state machine."""

from __future__ import annotations

import pickle
import sys

import pytest

import fntree
from fntree.compiler import lower, root_spec
from fntree.runtime import codec
from fntree.runtime.records import (
    O_SPAWN,
    O_VALUE,
    R_BEAR,
    R_DONE,
    R_EPOCH,
    R_FAIL,
    R_FINISH,
    R_GTD,
    R_ISSUE,
    R_RECODE,
    R_REQUEUE,
    R_RETRY_FAILED,
    R_ROOT,
    R_TARGETS,
    Collected,
    Res,
    Spec,
)
from fntree.runtime.state import FAILED, READY, RUNNING, WAITING, RunState, apply

RES = Res(None, None, 1.0, None)
BIG = Res(3600.0, 2**30, 4.0, 2)


def spec(job_id, *, name=None, res=RES, slots=(), deps=()):
    return Spec(job_id, name or f"job{job_id}", b"key", b"args", res, slots, deps)


def root(job_id=1, **kwargs):
    return (R_ROOT, spec(job_id, **kwargs), {b"key": b"fn"})


def done_value(job_id, value):
    return (R_DONE, job_id, (O_VALUE, value), {}, None)


def done_spawn(job_id, children, follow=None, fns=None):
    return (R_DONE, job_id, (O_SPAWN, tuple(children), follow), fns or {}, None)


def run(*records):
    """A fresh state with `records` applied in order, its invariants checked after each."""
    state = RunState()
    for record in records:
        apply(state, record)
        check_invariants(state)
    return state


def ready_ids(state):
    return {cid for queue in state.ready.values() for cid in queue}


def check_invariants(state):
    """The invariants stated in fntree/runtime/state.py's docstring."""
    for job_id, cid in state.by_job.items():
        assert state.chains[cid].job is not None
        assert state.chains[cid].job.job_id == job_id
    for cid, chain in state.chains.items():
        if chain.job is not None:
            assert state.by_job[chain.job.job_id] == cid
        should_be_ready = (chain.job is not None and chain.pending == 0
                           and cid not in state.running and cid not in state.failed)
        assert (cid in ready_ids(state)) == should_be_ready, cid
        assert (chain.status == READY) == should_be_ready, cid
        assert (chain.status == RUNNING) == (cid in state.running)
        assert (chain.status == FAILED) == (cid in state.failed)
        assert (chain.status == WAITING) == (chain.pending > 0)
    for res, queue in state.ready.items():
        for cid in queue:
            assert state.chains[cid].job.res == res


def snapshot(state):
    """Everything in `state` as plain, comparable data."""
    chains = {
        cid: (c.chain_id, c.parent, c.index, c.job, c.pending, list(c.values), c.status,
              c.attempts, c.failures, c.gtd)
        for cid, c in state.chains.items()
    }
    return {
        "chains": chains,
        "by_job": dict(state.by_job),
        "ready": {res: list(queue) for res, queue in state.ready.items() if queue},
        "running": dict(state.running),
        "failed": dict(state.failed),
        "fns": dict(state.fns),
        "done": dict(state.done),
        "epoch": state.epoch,
        "finished": state.finished,
        "value": state.value,
        "root": state.root,
        "to_clean": list(state.to_clean),
    }


# -- the root ------------------------------------------------------------------------


def test_root_makes_the_root_chain_ready():
    """ROOT adds the root chain, ready, and records the root spec and its functions."""
    state = run(root())
    chain = state.chains[1]
    assert chain.status == READY
    assert chain.parent is None
    assert state.ready == {RES: {1: None}}
    assert state.by_job == {1: 1}
    assert state.root == spec(1)
    assert state.fns == {b"key": b"fn"}
    assert not state.finished


def test_root_with_deps_waits_for_them():
    """A root with promised calls waits while their chains, which are ready, run first."""
    state = run(root(slots=(0, 1), deps=(spec(5), spec(6))))
    assert state.chains[1].status == WAITING
    assert state.chains[1].pending == 2
    assert ready_ids(state) == {5, 6}
    assert state.waiting_count() == 1
    state = run(root(slots=(1, 0), deps=(spec(5), spec(6))),
                done_value(6, b"six"), done_value(5, b"five"))
    assert state.chains[1].status == READY
    assert state.chains[1].slot_values() == (b"six", b"five")
    assert ready_ids(state) == {1}


def test_issue_moves_a_ready_chain_to_running():
    """ISSUE takes the chain off the ready queue and records the attempt as running."""
    state = run(root(), (R_ISSUE, 1, 1))
    assert state.chains[1].status == RUNNING
    assert state.chains[1].attempts == 1
    assert state.running == {1: 1}
    assert state.ready_count() == 0


def test_done_with_a_value_closes_the_root_and_finishes():
    """DONE with a value closes the root chain: the run is finished with that value."""
    state = run(root(), (R_ISSUE, 1, 1), done_value(1, b"result"))
    assert state.finished
    assert state.value == b"result"
    assert state.chains == {}
    assert state.by_job == {}
    assert state.running == {}
    assert state.done == {"job1": 1}


def test_finish_records_the_value():
    """FINISH marks the run finished with its value."""
    state = run(root(), (R_FINISH, b"v"))
    assert state.finished
    assert state.value == b"v"


# -- spawns --------------------------------------------------------------------------


def test_done_with_a_spawn_makes_children_ready_and_the_chain_wait():
    """DONE with children and a follow-on: children are ready chains, the parent waits."""
    state = run(root(), (R_ISSUE, 1, 1),
                done_spawn(1, [spec(10), spec(11)], spec(2, slots=(1, 0)), {b"k2": b"f2"}))
    parent = state.chains[1]
    assert parent.status == WAITING
    assert parent.pending == 2
    assert parent.job == spec(2, slots=(1, 0))
    assert state.by_job == {2: 1, 10: 10, 11: 11}
    assert ready_ids(state) == {10, 11}
    assert state.chains[10].parent == 1
    assert [state.chains[10].index, state.chains[11].index] == [0, 1]
    assert state.running == {}
    assert state.fns == {b"key": b"fn", b"k2": b"f2"}


def test_children_closing_make_the_follow_on_ready_with_their_values():
    """When the last child closes, the follow-on is ready and its slots read their values."""
    records = [root(), done_spawn(1, [spec(10), spec(11)], spec(2, slots=(1, 0))),
               done_value(10, b"a")]
    state = run(*records)
    assert state.chains[1].status == WAITING
    assert state.chains[1].values == [b"a", None]
    state = run(*records, done_value(11, b"b"))
    parent = state.chains[1]
    assert parent.status == READY
    assert parent.values == [b"a", b"b"]
    assert parent.slot_values() == (b"b", b"a")
    assert ready_ids(state) == {1}
    assert set(state.chains) == {1}


def test_the_follow_on_closes_the_chain():
    """The follow-on's value is the chain's value: the root closes and the run finishes."""
    state = run(root(), done_spawn(1, [spec(10)], spec(2, slots=(0,))), done_value(10, b"a"),
                (R_ISSUE, 2, 1), done_value(2, b"final"))
    assert state.finished
    assert state.value == b"final"
    assert state.done == {"job1": 1, "job10": 1, "job2": 1}


def test_done_of_a_ready_job_takes_it_off_its_queue():
    """DONE of a job that was never issued (a follow-on run straight after its predecessor)
    leaves no trace of it in the ready queue."""
    state = run(root(), (R_ISSUE, 1, 1), done_spawn(1, [], spec(2)),
                done_spawn(2, [spec(10)], spec(3, slots=(0,))))
    assert state.chains[1].status == WAITING
    assert ready_ids(state) == {10}
    assert state.by_job == {3: 1, 10: 10}


def test_a_spawn_with_only_a_follow_on_is_ready_at_once():
    """DONE with no children and a follow-on leaves the chain ready for the follow-on."""
    state = run(root(), (R_ISSUE, 1, 1), done_spawn(1, [], spec(2)))
    assert state.chains[1].status == READY
    assert state.chains[1].job == spec(2)
    assert state.by_job == {2: 1}
    assert ready_ids(state) == {1}


def test_children_only_chains_close_with_collected_values():
    """A chain with children and no follow-on closes with a Collected of their values, in order."""
    state = run(root(), done_spawn(1, [spec(10), spec(11)]), done_value(11, b"b"),
                done_value(10, b"a"))
    assert state.finished
    assert state.value == Collected((b"a", b"b"))


def test_an_empty_spawn_closes_with_no_values():
    """DONE with neither children nor follow-on closes the chain with Collected(())."""
    state = run(root(), done_spawn(1, []))
    assert state.finished
    assert state.value == Collected(())


def test_a_collected_value_reaches_the_parent_chain():
    """A children-only child chain hands its Collected value to its parent's follow-on."""
    state = run(root(), done_spawn(1, [spec(10)], spec(2, slots=(0,))),
                done_spawn(10, [spec(20), spec(21)]), done_value(20, b"x"), done_value(21, b"y"))
    assert state.chains[1].status == READY
    assert state.chains[1].slot_values() == (Collected((b"x", b"y")),)
    assert set(state.chains) == {1}


def test_a_child_with_deps_waits_for_them_within_its_own_chain():
    """A child spec's deps run as children of the child's chain, before the child."""
    child = spec(10, slots=(0,), deps=(spec(30),))
    state = run(root(), done_spawn(1, [child], spec(2, slots=(0,))))
    assert state.chains[10].status == WAITING
    assert state.chains[30].parent == 10
    assert ready_ids(state) == {30}
    state = run(root(), done_spawn(1, [child], spec(2, slots=(0,))), done_value(30, b"d"))
    assert state.chains[10].slot_values() == (b"d",)
    assert ready_ids(state) == {10}


def test_ready_queues_are_kept_per_resources():
    """Ready chains are queued by their resources."""
    state = run(root(), done_spawn(1, [spec(10), spec(11, res=BIG), spec(12)]))
    assert state.ready == {RES: {10: None, 12: None}, BIG: {11: None}}
    assert state.ready_count() == 3
    assert state.chain_of_job(11) is state.chains[11]
    assert state.chain_of_job(999) is None


# -- failures ------------------------------------------------------------------------


def test_a_failure_with_retries_left_makes_the_chain_ready_again():
    """FAIL that is not permanent counts the failure and puts the chain back in its queue."""
    state = run(root(), (R_ISSUE, 1, 1), (R_FAIL, 1, 1, False, "boom", "logs/1.log"))
    chain = state.chains[1]
    assert chain.status == READY
    assert chain.failures == 1
    assert chain.attempts == 1
    assert state.running == {}
    assert state.failed == {}
    assert ready_ids(state) == {1}


def test_a_permanent_failure_puts_the_chain_in_failed():
    """FAIL that is permanent takes the chain off every queue into state.failed."""
    state = run(root(), (R_ISSUE, 1, 1), (R_FAIL, 1, 1, False, "boom", None),
                (R_ISSUE, 1, 2), (R_FAIL, 1, 2, True, "boom again", "logs/1.log"))
    chain = state.chains[1]
    assert chain.status == FAILED
    assert chain.failures == 2
    assert chain.attempts == 2
    assert state.failed == {1: ("boom again", "logs/1.log")}
    assert state.ready_count() == 0
    assert state.running == {}
    assert not state.finished


def test_retry_failed_makes_failed_chains_ready():
    """RETRY_FAILED gives every failed chain a fresh set of attempts and makes it ready."""
    state = run(root(), done_spawn(1, [spec(10), spec(11)]),
                (R_ISSUE, 10, 1), (R_FAIL, 10, 1, True, "a", None),
                (R_ISSUE, 11, 1), (R_FAIL, 11, 1, True, "b", None),
                (R_RETRY_FAILED,))
    assert state.failed == {}
    assert ready_ids(state) == {10, 11}
    assert state.chains[10].status == READY
    assert state.chains[10].failures == 0


def test_done_resets_the_failure_count():
    """A job that completes after failures leaves its chain with no failures counted."""
    state = run(root(), (R_ISSUE, 1, 1), (R_FAIL, 1, 1, False, "x", None), (R_ISSUE, 1, 2),
                done_spawn(1, [spec(10)], spec(2, slots=(0,))))
    assert state.chains[1].failures == 0
    assert state.chains[1].attempts == 0


# -- leaders and requeues ------------------------------------------------------------


def test_a_new_epoch_makes_running_chains_ready_again():
    """EPOCH: whatever the previous leader had issued is ready again, with no failure counted."""
    state = run(root(), done_spawn(1, [spec(10), spec(11)]), (R_EPOCH, 1, 100, "host"),
                (R_ISSUE, 10, 1), (R_EPOCH, 2, 200, "host"))
    assert state.epoch == 2
    assert state.running == {}
    assert ready_ids(state) == {10, 11}
    assert state.chains[10].status == READY
    assert state.chains[10].failures == 0


def test_a_new_epoch_leaves_failed_chains_failed():
    """EPOCH does not retry permanently failed chains: only RETRY_FAILED does."""
    state = run(root(), (R_ISSUE, 1, 1), (R_FAIL, 1, 1, True, "x", None), (R_EPOCH, 2, 1, "h"))
    assert state.chains[1].status == FAILED
    assert state.ready_count() == 0


def test_requeue_makes_an_issued_chain_ready_without_a_failure():
    """REQUEUE puts an issued job back in its queue and charges no failure."""
    state = run(root(), (R_ISSUE, 1, 1), (R_REQUEUE, 1))
    chain = state.chains[1]
    assert chain.status == READY
    assert chain.failures == 0
    assert state.running == {}
    assert ready_ids(state) == {1}


# -- global temp dirs ----------------------------------------------------------------


def test_closing_a_chain_that_made_its_global_temp_dir_queues_it_for_cleaning():
    """GTD marks the chain; when it closes, its id is queued in to_clean."""
    state = run(root(), done_spawn(1, [spec(10), spec(11)], spec(2, slots=(0, 1))),
                (R_GTD, 10), done_value(10, b"a"), done_value(11, b"b"))
    assert state.to_clean == [10]
    state = run(root(), (R_GTD, 1), done_value(1, b"v"))
    assert state.to_clean == [1]


def test_a_chain_without_global_temp_dir_is_not_cleaned():
    """A chain that never made its global temp dir closes without queueing anything."""
    state = run(root(), done_spawn(1, [spec(10)]), done_value(10, b"a"))
    assert state.finished
    assert state.to_clean == []


def test_a_chain_keeps_its_global_temp_dir_until_its_closer_completes():
    """A chain's gtd mark survives its founder's completion; only its closing queues it."""
    records = [root(), (R_GTD, 1), done_spawn(1, [spec(10)], spec(2, slots=(0,)))]
    assert run(*records).to_clean == []
    assert run(*records, done_value(10, b"a"), done_value(2, b"v")).to_clean == [1]


def test_cascading_closes_queue_every_marked_chain():
    """When a last child's close closes its ancestors too, each marked one is queued."""
    state = run(root(), done_spawn(1, [spec(10)]), done_spawn(10, [spec(20)]),
                (R_GTD, 1), (R_GTD, 10), (R_GTD, 20), done_value(20, b"x"))
    assert state.finished
    assert state.value == Collected((Collected((b"x",)),))
    assert state.to_clean == [20, 10, 1]


def test_gtd_of_a_closed_chain_is_ignored():
    """GTD naming a chain that is no longer live changes nothing."""
    records = [root(), done_spawn(1, [spec(10), spec(11)]), done_value(10, b"a")]
    assert snapshot(run(*records, (R_GTD, 10))) == snapshot(run(*records))


# -- records and replay --------------------------------------------------------------


def test_an_unknown_record_kind_raises():
    """apply raises ValueError for a record kind it does not know."""
    with pytest.raises(ValueError, match="unknown journal record kind 99"):
        apply(RunState(), (99,))


RUN = [
    root(),
    (R_EPOCH, 1, 100, "host"),
    (R_ISSUE, 1, 1),
    done_spawn(1, [spec(10), spec(11, res=BIG), spec(12, slots=(0,), deps=(spec(30),))],
               spec(2, slots=(2, 0)), {b"k2": b"f2"}),
    (R_ISSUE, 10, 1),
    (R_GTD, 10),
    (R_FAIL, 10, 1, False, "flaky", None),
    (R_ISSUE, 11, 1),
    (R_FAIL, 11, 1, True, "broken", "logs/11.log"),
    (R_ISSUE, 30, 1),
    done_value(30, b"dep"),
    (R_ISSUE, 12, 1),
    (R_REQUEUE, 12),
    (R_ISSUE, 12, 2),
    (R_EPOCH, 2, 200, "host"),
    (R_RETRY_FAILED,),
    (R_ISSUE, 10, 2),
    done_value(10, b"ten"),
    (R_ISSUE, 11, 2),
    done_value(11, b"eleven"),
    (R_ISSUE, 12, 3),
    done_spawn(12, [spec(40)]),
    done_value(40, b"forty"),
]


def test_the_recorded_run_reaches_the_expected_state():
    """The sample run ends with the follow-on ready, holding its children's values."""
    state = run(*RUN)
    parent = state.chains[1]
    assert parent.status == READY
    assert parent.values == [b"ten", b"eleven", Collected((b"forty",))]
    assert parent.slot_values() == (Collected((b"forty",)), b"ten")
    assert state.to_clean == [10]
    assert state.epoch == 2
    assert state.done == {"job1": 1, "job30": 1, "job10": 1, "job11": 1, "job12": 1, "job40": 1}


def test_replaying_the_same_records_gives_the_same_state():
    """Two fresh states fed the same records are equal after every record."""
    first, second = RunState(), RunState()
    for record in RUN:
        apply(first, record)
        apply(second, record)
        assert snapshot(first) == snapshot(second)


def test_a_pickled_state_continues_like_the_original():
    """A state pickled mid-run (a snapshot) and fed the rest of the records equals full replay."""
    for cut in range(len(RUN) + 1):
        restored = pickle.loads(pickle.dumps(run(*RUN[:cut]), pickle.HIGHEST_PROTOCOL))
        for record in RUN[cut:]:
            apply(restored, record)
        assert snapshot(restored) == snapshot(run(*RUN)), cut


# -- with the compiler ---------------------------------------------------------------


@fntree.target
def leaf(x):
    return x


@fntree.target
def add(a, b):
    return a + b


def test_compiled_outcomes_drive_the_state_machine():
    """Specs from root_spec and lower run through apply to the root's final value."""
    spec_root, fns = root_spec(add(leaf(1), leaf(2)))
    state = run((R_ROOT, spec_root, fns))
    dep_ids = [d.job_id for d in spec_root.deps]
    assert ready_ids(state) == set(dep_ids)
    for dep_id in dep_ids:
        apply(state, (R_DONE, dep_id, lower(dep_id, 1)[0], {}, None))
        check_invariants(state)
    assert ready_ids(state) == {spec_root.job_id}
    outcome, more = lower(spec_root.job_id, fntree.children(leaf(3)).then(add(leaf(4), 5)))
    apply(state, (R_DONE, spec_root.job_id, outcome, more, None))
    check_invariants(state)
    children, follow = outcome[1], outcome[2]
    assert ready_ids(state) == {c.job_id for c in children}
    for child in children:
        apply(state, (R_DONE, child.job_id, lower(child.job_id, child.name)[0], {}, None))
        check_invariants(state)
    assert state.chain_of_job(follow.job_id) is state.chains[spec_root.job_id]
    apply(state, (R_DONE, follow.job_id, lower(follow.job_id, "end")[0], {}, None))
    assert state.finished
    assert state.value == lower(0, "end")[0][1]
    assert state.chains == {}


def test_targets_count_completions_by_code_and_recode_moves_live_jobs() -> None:
    """TARGETS says what a key is; DONE counts by its code hash; RECODE re-keys live jobs."""
    old = ("steps", "process", b"h1", "")
    state = run(root(1), (R_TARGETS, {b"key": old}),
                done_spawn(1, [spec(2, name="process"), spec(3, name="process")]),
                done_value(2, b"v"))
    assert state.done_by_code == {b"h1": 2}
    assert state.live_jobs() == {b"key": 1}
    apply(state, (R_RECODE, {b"key": (b"new", b"fn2")}))
    apply(state, (R_TARGETS, {b"new": ("steps", "process", b"h2", "")}))
    assert state.chains[3].job is not None and state.chains[3].job.fn_key == b"new"
    assert state.fns[b"new"] == b"fn2"
    apply(state, done_value(3, b"w"))
    assert state.done_by_code == {b"h1": 2, b"h2": 1}


def test_a_snapshot_without_identity_fields_loads_with_empty_ones() -> None:
    """A state pickled before `targets` existed unpickles with empty `targets` and counts."""
    state = run(root(1))
    del state.__dict__["targets"], state.__dict__["done_by_code"]
    loaded = pickle.loads(pickle.dumps(state))
    assert loaded.targets == {} and loaded.done_by_code == {} and 1 in loaded.chains


# -- depth ---------------------------------------------------------------------------


def _nest(state, first_id, depth, leaf=b"leaf"):
    """Apply a children-only nesting `depth` deep below job `first_id`, closing at the leaf."""
    for job_id in range(first_id, first_id + depth):
        apply(state, done_spawn(job_id, [spec(job_id + 1)]))
    apply(state, done_value(first_id + depth, leaf))


def _depth(value):
    """(depth, innermost) of a value nested in one-item Collected values, without recursion."""
    depth = 0
    while isinstance(value, Collected):
        assert len(value.values) == 1
        value, depth = value.values[0], depth + 1
    return depth, value


def test_children_only_nesting_100000_deep_closes_and_pickles():
    """100,000 nested children-only chains close into one value that pickles and decodes flat."""
    leaf = codec.encode_value("leaf")
    state = run(root(1))
    _nest(state, 1, 100_000, leaf)
    assert state.finished and not state.chains
    assert _depth(state.value) == (100_000, leaf)
    record = pickle.loads(pickle.dumps([(R_FINISH, state.value)], pickle.HIGHEST_PROTOCOL))
    assert _depth(record[0][1]) == (100_000, leaf)
    depth, inner = 0, codec.decode_value(state.value)
    while isinstance(inner, list):
        inner, depth = inner[0], depth + 1
    assert (depth, inner) == (100_000, "leaf")


def test_a_snapshot_holding_a_deep_value_continues_like_the_original():
    """A chain holding a 50,000-deep collected value while a sibling runs pickles and resumes."""
    state = run(root(1), done_spawn(1, [spec(2), spec(3)], spec(4, slots=(0, 1))))
    apply(state, done_spawn(2, [spec(100)]))
    _nest(state, 100, 50_000)
    copy = pickle.loads(pickle.dumps(state, pickle.HIGHEST_PROTOCOL))
    check_invariants(copy)
    assert _depth(copy.chains[1].values[0]) == (50_001, b"leaf")
    for each in (state, copy):
        apply(each, done_value(3, b"sibling"))
        apply(each, done_value(4, b"sum"))
        assert each.finished and each.value == b"sum"


def test_deps_10000_deep_become_chains_that_run_innermost_first():
    """A spec whose deps nest 10,000 deep makes one chain per dep; they close innermost first."""
    deep = spec(10_000)
    for job_id in range(9_999, 0, -1):
        deep = spec(job_id, slots=(0,), deps=(deep,))
    state = run((R_ROOT, deep, {b"key": b"fn"}))
    assert len(state.chains) == 10_000 and ready_ids(state) == {10_000}
    assert all(not c.job.deps for c in state.chains.values())
    copy = pickle.loads(pickle.dumps(state, pickle.HIGHEST_PROTOCOL))
    assert copy.root.job_id == 1 and copy.root.deps[0].deps[0].job_id == 3
    assert {**snapshot(copy), "root": None} == {**snapshot(state), "root": None}
    for job_id in range(10_000, 1, -1):
        apply(copy, done_value(job_id, b"v"))
        assert ready_ids(copy) == {job_id - 1}
        assert copy.chains[job_id - 1].slot_values() == (b"v",)
    apply(copy, done_value(1, b"top"))
    assert copy.finished and copy.value == b"top"


def test_rerun_drops_every_open_chain_and_starts_from_the_new_root():
    """RERUN: open, failed and finished chains are dropped; the new root is the one ready
    chain; completion counts and functions are kept, and the re-run is counted."""
    from fntree.runtime.records import R_RERUN

    state = run(root(1), done_spawn(1, [spec(2), spec(3)], spec(4)), done_value(2, 5),
                (R_ISSUE, 3, 1), (R_FAIL, 3, 1, True, "boom", None), (R_GTD, 1),
                (R_RERUN, spec(9, deps=(spec(10),), slots=(0,)), {b"new": b"fn2"}))
    assert set(state.chains) == {9, 10} and ready_ids(state) == {10}
    assert state.failed == {} and state.running == {} and not state.finished
    assert state.reruns == 1 and state.root is not None and state.root.job_id == 9
    assert state.done["job1"] == 1 and state.done["job2"] == 1
    assert state.fns[b"new"] == b"fn2" and state.to_clean == [1]
    state = run(root(1), done_value(1, 7), (R_FINISH, 7),
                (R_RERUN, spec(9), {}), done_value(9, 8))
    assert state.finished and state.value == 8 and state.reruns == 1


def test_a_done_record_marked_cached_is_counted_as_cached():
    """`DONE ... True` counts the job done and cached; older 4- and 5-field records do not."""
    state = run(root(1), done_spawn(1, [spec(2, name="leaf"), spec(3, name="leaf")]),
                (R_DONE, 2, (O_VALUE, 1), {}, True), (R_DONE, 3, (O_VALUE, 2), {}))
    assert state.done["leaf"] == 2 and state.cached["leaf"] == 1
    again = pickle.loads(pickle.dumps(state))  # a snapshot keeps the count
    assert again.cached == state.cached
    saved = dict(state.__dict__)
    del saved["cached"]  # a snapshot written before the field existed
    restored = RunState.__new__(RunState)
    restored.__setstate__(saved)
    assert restored.cached == {} and restored.done["leaf"] == 2


def test_closed_subtrees_leave_no_entries():
    """Each subtree that closes leaves no entry behind: the state holds only live chains."""
    fans, leaves = 100, 50
    state = run(root(), done_spawn(1, [spec(f) for f in range(2, 2 + fans)],
                                   spec(999, slots=tuple(range(fans)))))
    for n, fan in enumerate(range(2, 2 + fans), 1):
        follow = spec(fan * 1000 + 999, slots=tuple(range(leaves)))
        apply(state, (R_ISSUE, fan, 1))
        apply(state, done_spawn(fan, [spec(fan * 1000 + k) for k in range(leaves)], follow))
        for k in range(leaves):
            apply(state, done_value(fan * 1000 + k, b"1"))
        apply(state, done_value(follow.job_id, b"50"))
        live = 1 + fans - n  # the root's chain (its follow-on ready at the end), fans to run
        assert state.held() == {"chains": live, "by_job": live, "ready": fans - n + (n == fans),
                                "running": 0, "failed": 0}
    check_invariants(state)
    assert state.chains[1].slot_values() == (b"50",) * fans  # held for the root's follow-on


def test_shrink_gives_back_the_tables_of_a_closed_frontier():
    """After a wide frontier closes, `shrink` rebuilds the tables at their present size."""
    state = run(root())  # (the invariants are checked at the end: each check is O(n^2))
    apply(state, done_spawn(1, [spec(k) for k in range(2, 20_002)], spec(999_999, slots=())))
    apply(state, (R_BEAR, 1, 20_000))  # (as many children as that wait unborn: all born)
    for k in range(2, 20_002):
        apply(state, done_value(k, b"v"))
    wide = sys.getsizeof(state.chains)
    order = list(state.ready[RES])
    state.shrink()
    assert sys.getsizeof(state.chains) < wide / 100
    assert list(state.ready[RES]) == order
    check_invariants(state)
