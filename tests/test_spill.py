"""The leader's spill: children's values held for a follow-on past a budget go out of memory."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import value_workflows as vw
from test_values import _leader, _objects, _sound

import fntree
from fntree.runtime.objects import ObjectStore
from fntree.runtime.records import O_SPAWN, O_VALUE, R_DONE, R_ROOT, Collected, ObjectRef, Spec
from fntree.runtime.spill import BUDGET, SPILL_MIN, Spill, held_size, hold_values
from fntree.runtime.state import RunState, apply

RES = ("cpu", 1)


def _spec(job_id: int, slots: tuple[int, ...] = ()) -> Spec:
    return Spec(job_id, "t", b"k", b"", RES, slots)  # type: ignore[arg-type]


def _fanned(width: int, objects: ObjectStore | None, budget: int) -> RunState:
    """A state whose root spawned `width` children, each done with a 4 KiB value."""
    state = RunState()
    if objects is not None:
        state.spill = Spill(objects, budget)
    apply(state, (R_ROOT, _spec(1), {}))
    children = tuple(_spec(100 + k) for k in range(width))
    apply(state, (R_DONE, 1, (O_SPAWN, children, _spec(2, tuple(range(width)))), {}))
    for k in range(width):
        apply(state, (R_DONE, 100 + k, (O_VALUE, bytes([k]) * 4096), {}))
    return state


def test_held_size_counts_inline_bytes_in_collected_lists_and_no_references() -> None:
    """The bytes held are those of inline values, nested lists included, references none."""
    ref = ObjectRef(b"\0" * 32, 10**6)
    assert held_size([b"ab", None, ref, Collected((b"cde", Collected((b"f",)), ref))]) == 6


def test_values_past_the_budget_are_spilled_and_read_back_exactly(tmp_path: Path) -> None:
    """Past the budget a held value is a reference to an object holding its exact bytes;
    once the follow-on that took them completes, nothing is counted as held."""
    objects = ObjectStore(tmp_path / "objects")
    state = _fanned(10, objects, budget=3 * 4096)
    values = state.chains[1].values
    assert [type(v) for v in values] == [bytes] * 3 + [ObjectRef] * 7
    assert state.held_bytes == 3 * 4096
    assert [objects.get(v) if type(v) is ObjectRef else v for v in values] == [
        bytes([k]) * 4096 for k in range(10)]
    apply(state, (R_DONE, 2, (O_VALUE, b"done"), {}))
    assert state.finished and state.held_bytes == 0


def test_a_state_without_a_spill_holds_every_value(tmp_path: Path) -> None:
    """Readers (no spill) hold what they replay; `hold_values` then spills past the budget,
    as the leader does when it starts."""
    state = _fanned(10, None, BUDGET)
    assert all(type(v) is bytes for v in state.chains[1].values)
    hold_values(state, ObjectStore(tmp_path / "objects"), budget=2 * 4096)
    assert [type(v) for v in state.chains[1].values] == [bytes] * 2 + [ObjectRef] * 8
    assert state.held_bytes == 2 * 4096
    assert SPILL_MIN <= 4096


def test_a_snapshot_makes_the_spilled_objects_durable_first(tmp_path: Path) -> None:
    """Pickling the state for a snapshot syncs what was spilled, and leaves the spill out."""
    import pickle

    state = _fanned(10, ObjectStore(tmp_path / "objects"), budget=0)
    assert len(state.spill.unsynced) == 10
    copy = pickle.loads(pickle.dumps(state))
    assert state.spill.unsynced == [] and copy.spill is None
    assert copy.chains[1].values == state.chains[1].values


def test_a_leader_killed_holding_spilled_values_restarts_to_the_exact_value(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL of a leader whose spilled values wait for one slow child (compacting every
    turn, so its snapshots refer to them); a restart gives the exact value, the store sound."""
    store, gate = tmp_path / "jobstore", tmp_path / "gate"
    width, size = 240, 40 * 1024  # 9.6 MB held: past the budget
    monkeypatch.setenv("FNTREE_COMPACT_BYTES", "1")  # a snapshot at every turn
    leader = _leader(store, f"vw.held({width}, {size}, {str(gate)!r})")
    deadline = time.monotonic() + 300
    while len(_objects(store)) < 20:  # spilled (the root's arguments are inline)
        assert leader.poll() is None, leader.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the leader spilled nothing"
        time.sleep(0.1)
    snapshots = [p for p in (store / "journal").iterdir() if p.name.startswith("snapshot")]
    leader.send_signal(signal.SIGKILL)
    leader.wait(timeout=60)
    gate.touch()
    assert snapshots, "no snapshot was written while values were spilled"
    assert fntree.restart(store) == vw.held_digest(width, size)
    _sound(store)


def test_a_spilled_value_keys_a_pure_call_as_the_value_held_inline() -> None:
    """The cache key of a follow-on is the same whether the leader held its value or
    spilled it, so a cached follow-on is found either way."""
    import hashlib

    from fntree.runtime.cachekey import job_key

    value = vw.blob(4096, 9)
    spilled = ObjectRef(hashlib.sha256(value).digest(), len(value))
    assert job_key(b"code", b"args", [value], None) == job_key(b"code", b"args", [spilled], None)
    assert job_key(b"code", b"args", [Collected((value,))], None) == job_key(
        b"code", b"args", [Collected((spilled,))], None)
