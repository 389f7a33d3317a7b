"""Children of one job beyond a batch wait unborn and are born as the leader needs them."""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import workflows as wf
from processes import kill_run, wait_for, worker_pids
from test_values import _sound

import fntree
from fntree.cli.status import describe
from fntree.runtime import unborn
from fntree.runtime.check import _invariants
from fntree.runtime.leader import MAX_PACKET, Leader
from fntree.runtime.objects import ObjectRef, ObjectStore, live_digests
from fntree.runtime.records import (
    O_SPAWN,
    O_VALUE,
    R_BEAR,
    R_DONE,
    R_ISSUE,
    R_RECODE,
    R_ROOT,
    Res,
    Spec,
)
from fntree.runtime.snapshot import snapshot
from fntree.runtime.spill import Spill, hold_values
from fntree.runtime.state import RunState, apply
from fntree.runtime.store import JobStore

TESTS = str(Path(__file__).parent)
RES = Res(None, None, 1.0, None)
N = unborn.LAZY_MIN + 1000


def _spec(job_id: int, name: str = "leaf", deps: tuple[Spec, ...] = ()) -> Spec:
    return Spec(job_id, name, b"k", b"a", RES, (), deps)


def _spawned(n: int, spill: Spill | None = None) -> RunState:
    """A state whose root spawned `n` leaves and a follow-on taking them all."""
    state = RunState()
    state.spill = spill
    apply(state, (R_ROOT, _spec(1, "root"), {b"k": b"fn", b"new": b"fn2"}))
    children = tuple(_spec(100 + i) for i in range(n))
    apply(state, (R_DONE, 1, (O_SPAWN, children, _spec(2, "total")), {}))
    return state


def _errors(state: RunState) -> list[str]:
    return [f.text for f in _invariants(state)]


def test_a_small_fan_out_makes_its_chains_at_once():
    """Fewer children than `LAZY_MIN` take the eager path: all are live, none unborn."""
    state = _spawned(unborn.LAZY_MIN - 1)
    assert not state.unborn and len(state.chains) == unborn.LAZY_MIN
    assert state.ready_count() == unborn.LAZY_MIN - 1


def test_a_large_fan_out_waits_unborn_and_counts_as_ready():
    """`LAZY_MIN` children or more make no chain; snapshot counts them ready, check is sound."""
    state = _spawned(N)
    assert len(state.chains) == 1 and state.ready_count() == 0
    assert state.unborn_count() == N and state.chains[1].pending == N
    assert snapshot(state).targets["leaf"]["ready"] == N
    assert not _errors(state)


def test_births_come_in_order_across_and_within_chunks(monkeypatch: pytest.MonkeyPatch):
    """A BEAR bears the next `count` children in order, whatever the chunk size."""
    monkeypatch.setattr(unborn, "CHUNK", 700)
    state = _spawned(N)
    apply(state, (R_BEAR, 1, 1000))  # a chunk and part of the next
    apply(state, (R_BEAR, 1, 10))
    born = [cid for cid in state.chains if cid != 1]
    assert born == [100 + i for i in range(1010)]
    assert [state.chains[cid].index for cid in born] == list(range(1010))
    assert state.unborn_count() == N - 1010 and not _errors(state)
    counts = snapshot(state).targets["leaf"]
    assert counts["ready"] == N


def test_a_chain_closes_only_when_every_child_is_born_and_done():
    """`pending` counts the unborn: the follow-on is ready after the last birth's jobs."""
    state = _spawned(N)
    for _ in range(N // 1000 + 1):
        first = len(state.chains)
        apply(state, (R_BEAR, 1, 1000))
        for cid in list(state.chains)[first:]:
            apply(state, (R_ISSUE, cid, 1))
            apply(state, (R_DONE, cid, (O_VALUE, b"v"), {}))
        assert state.chains[1].status == ("ready" if not state.unborn else "waiting")
    assert state.chains[1].pending == 0 and not state.unborn and len(state.chains) == 1


def test_unborn_children_with_deps_count_as_waiting_and_are_born_with_them():
    """A child with a dep counts waiting (its dep ready) unborn, and is born with its dep."""
    state = RunState()
    apply(state, (R_ROOT, _spec(1, "root"), {b"k": b"fn"}))
    children = tuple(_spec(100 + i, "mid", (_spec(10**6 + i, "dep"),)) for i in range(N))
    apply(state, (R_DONE, 1, (O_SPAWN, children, None), {}))
    targets = snapshot(state).targets
    assert targets["mid"]["waiting"] == N and targets["dep"]["ready"] == N
    apply(state, (R_BEAR, 1, 3))
    assert state.chains[100].status == "waiting" and state.chains[10**6].parent == 100
    assert not _errors(state)


def test_children_born_after_a_recode_run_the_new_code():
    """A RECODE record reaches children not yet born: they are born with the new key."""
    state = _spawned(N)
    assert state.live_jobs()[b"k"] == N + 1  # (the follow-on's key is the same)
    apply(state, (R_RECODE, {b"k": (b"new", b"fn2")}))
    apply(state, (R_BEAR, 1, 5))
    assert {state.chains[100 + i].job.fn_key for i in range(5)} == {b"new"}  # type: ignore


def test_a_snapshot_of_spilled_chunks_replays_exactly(tmp_path: Path):
    """Chunks past the budget go to objects/ (live for the collector); a snapshot syncs
    them, and a reader without a spill bears them from there as the leader did."""
    objects = ObjectStore(tmp_path / "objects")
    state = _spawned(N, Spill(objects, budget=1))
    litter = state.unborn[1]
    spilled = [c.data for c in litter.chunks if type(c.data) is ObjectRef]
    assert len(spilled) == len(litter.chunks) and state.unborn_bytes == 0
    assert {ref.digest for ref in spilled} <= live_digests(state)
    copy: RunState = pickle.loads(pickle.dumps(state))
    assert not state.spill.unsynced  # type: ignore[union-attr]
    copy.objects = objects
    for record in [(R_BEAR, 1, 1500), (R_BEAR, 1, 3000)]:
        apply(state, record)
        apply(copy, record)
    assert list(copy.chains) == list(state.chains)
    assert copy.unborn_count() == state.unborn_count() == N - 4500


def test_a_held_chunk_is_kept_by_the_collector_but_not_needed():
    """A chunk held in memory is no orphan if stored (an earlier leader spilled it), yet
    `fntree check` does not call it missing when it is not stored."""
    state = _spawned(N)
    held = {hashlib.sha256(c.data).digest() for c in state.unborn[1].chunks}  # type: ignore
    assert not held & live_digests(state)
    assert held <= live_digests(state, kept=True)


def test_a_recovered_state_spills_its_unborn_chunks_past_the_budget(tmp_path: Path):
    """A replay holds every chunk; `hold_values` spills those past the budget, and births
    read them back from objects/."""
    state = _spawned(N)  # as recovery replays it: no spill, all held
    assert state.unborn_bytes > 0
    hold_values(state, ObjectStore(tmp_path / "objects"), budget=1)
    assert state.unborn_bytes == 0
    assert all(type(c.data) is ObjectRef for c in state.unborn[1].chunks)
    apply(state, (R_BEAR, 1, N))
    assert not state.unborn and len(state.chains) == N + 1 and not _errors(state)


def _watch_live(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(live chains, unborn children) as each `_dispatch` of a leader begins."""
    seen: list[tuple[int, int]] = []
    dispatch = Leader._dispatch

    def watched(self: Leader) -> None:
        seen.append((self.state.held()["chains"], self.state.unborn_count()))
        dispatch(self)

    monkeypatch.setattr(Leader, "_dispatch", watched)
    return seen


def test_a_fan_out_of_20000_gives_the_exact_value_with_few_live_chains(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One job spawning 20,000 children: the exact sum, and the live chains stay far below."""
    monkeypatch.setenv("FNTREE_BIRTHS", "256")
    seen = _watch_live(monkeypatch)
    n = 20_000
    assert fntree.run(wf.fan(n), jobstore=tmp_path / "store") == n * (n - 1) // 2
    assert max(unborn for _, unborn in seen) > n // 2  # most were unborn a while
    assert max(live for live, _ in seen) <= 8 * 256 + 4 * MAX_PACKET


def _stored_chunks(store: Path) -> list[str]:
    """The names of the unborn chunks of the store's state that are in its objects/."""
    state, _, _ = JobStore.open(store).recover(repair=False)
    names = [c.data.name if type(c.data) is ObjectRef else hashlib.sha256(c.data).hexdigest()
             for litter in state.unborn.values() for c in litter.chunks]
    return [name for name in names if (store / "objects" / name).exists()]


def _leader(store: Path, record: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    code = (f"import fntree, workflows as wf\n"
            f"fntree.run(wf.slow_fan(20000, 0.0, {str(record)!r}), jobstore={str(store)!r})\n")
    return subprocess.Popen([sys.executable, "-c", code],
                            env={**os.environ, "PYTHONPATH": TESTS, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_leader_killed_mid_birth_restarts_to_the_exact_value(tmp_path: Path) -> None:
    """SIGKILL mid-fan-out, with every chunk spilled and a snapshot every turn: status counts
    every job, check is sound, and a restart (other knobs) gives the exact value, each child
    run once but for those in flight."""
    store, record = tmp_path / "store", tmp_path / "ran"
    leader = _leader(store, record, {
        "FNTREE_BIRTHS": "300", "FNTREE_UNBORN_CHUNK": "128", "FNTREE_SPILL_BUDGET": "1",
        "FNTREE_COMPACT_BYTES": "1", "FNTREE_COMPACT_RATIO": "0"})

    def started() -> bool:
        assert leader.poll() is None, leader.stderr.read().decode()[-2000:]  # type: ignore
        return record.exists() and len(record.read_text().split()) >= 3000

    wait_for(started, timeout=600)
    kill_run(leader, store)
    ran = record.read_text().split()
    assert 0 < len(ran) < 20_000, "the leader was not killed mid-fan-out"
    assert os.listdir(store / "objects"), "no unborn chunk was spilled"
    status = describe(JobStore.open(store))
    leaves = status["targets"]["slow_leaf"]
    assert leaves["done"] + leaves["ready"] == 20_000 and leaves["ready"] > 0
    assert status["targets"]["total"]["waiting"] == 1
    orphans = " ".join(text for text in _sound(store) if "no live job refers to" in text)
    stored = _stored_chunks(store)
    assert stored and not [name for name in stored if name in orphans]
    assert fntree.restart(store) == 20_000 * 19_999 // 2
    runs = collections.Counter(record.read_text().split())
    assert len(runs) == 20_000  # every leaf ran
    assert sum(n - 1 for n in runs.values()) <= 4 * MAX_PACKET  # only those in flight again
    _sound(store)


@pytest.mark.parametrize("point", ["objects.write:20@leader", "leader.commit:6@leader",
                                   "compact.rename:6@leader"])
def test_a_leader_killed_at_a_write_of_a_fan_out_restarts_exactly(tmp_path: Path,
                                                                   point: str) -> None:
    """A kill while spilling unborn chunks, after a commit with births, or mid-snapshot:
    the restart gives the exact value and the store is sound."""
    store, record = tmp_path / "store", tmp_path / "ran"
    n = unborn.LAZY_MIN + 2000
    code = (f"import fntree, workflows as wf\n"
            f"fntree.run(wf.slow_fan({n}, 0.0, {str(record)!r}), jobstore={str(store)!r})\n")
    leader = subprocess.Popen([sys.executable, "-c", code], env={
        **os.environ, "PYTHONPATH": TESTS, "FNTREE_BIRTHS": "200", "FNTREE_UNBORN_CHUNK": "64",
        "FNTREE_SPILL_BUDGET": "1", "FNTREE_COMPACT_BYTES": "1", "FNTREE_COMPACT_RATIO": "0",
        "FNTREE_CRASH_AT": point},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = leader.communicate(timeout=600)
    assert leader.returncode == -9, err.decode()[-2000:]
    for pid in worker_pids(store):  # (they die with their leader; do not wait for it)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not record.exists() or len(record.read_text().split()) < n, "killed too late"
    _sound(store)
    assert fntree.restart(store) == n * (n - 1) // 2
    runs = collections.Counter(record.read_text().split())
    assert len(runs) == n and sum(k - 1 for k in runs.values()) <= 4 * MAX_PACKET
    _sound(store)


def test_status_counts_every_child_while_the_leader_runs(tmp_path: Path) -> None:
    """`fntree status` of a live fan-out counts each child once, born or not, in one state."""
    store, record = tmp_path / "store", tmp_path / "ran"
    n = unborn.LAZY_MIN + 1000
    code = (f"import fntree, workflows as wf\n"
            f"fntree.run(wf.slow_fan({n}, 0.005, {str(record)!r}), jobstore={str(store)!r})\n")
    leader = subprocess.Popen([sys.executable, "-c", code],
                              env={**os.environ, "PYTHONPATH": TESTS, "FNTREE_BIRTHS": "256"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: record.exists() and len(record.read_text().split()) >= 300, 600)
        status = describe(JobStore.open(store))
        leaves = status["targets"]["slow_leaf"]
        assert status["state"] == "running" and leaves["done"] < n
        assert sum(leaves.values()) - leaves["cached"] == n and leaves["ready"] > 1000
        assert status["targets"]["total"]["waiting"] == 1
    finally:
        kill_run(leader, store)
