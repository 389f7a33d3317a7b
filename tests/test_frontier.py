"""Tests of fntree.runtime.frontier: which jobs of spawning targets a packet admits."""

from __future__ import annotations

from fntree.runtime.frontier import UNTRIED, Frontier
from fntree.runtime.records import O_SPAWN, O_VALUE, R_DONE, R_ISSUE, R_ROOT, Res, Result, Spec
from fntree.runtime.state import RunState, apply

RES = Res(None, None, 1.0, None)


def spec(job_id: int, name: str) -> Spec:
    return Spec(job_id, name, b"key", b"args", RES)


def fans(n: int) -> RunState:
    """A state whose root spawned `n` fans, all ready."""
    state = RunState()
    apply(state, (R_ROOT, spec(1, "root"), {b"key": b"fn"}))
    apply(state, (R_DONE, 1, (O_SPAWN, tuple(spec(10 + i, "fan") for i in range(n)), None), {}))
    return state


def result(job_id: int, outcome: tuple) -> Result:
    return Result(job_id, 1, True, outcome, "", {}, None, False, (0.0, 0.0, 0.0, 0), (), False)


def admitted(frontier: Frontier, state: RunState, ids: range, slots: int = 2) -> list[int]:
    """The ids of the packet the leader would make from `ids`, in order."""
    frontier.open(slots)
    taken: list[int] = []
    for job_id in ids:
        job = state.chains[job_id].job
        assert job is not None
        if job.name not in frontier.free and not frontier.admits(state, job, not taken):
            break
        taken.append(job_id)
        apply(state, (R_ISSUE, job_id, 1))
    return taken


def test_untried_target_goes_out_a_few_at_a_time():
    """Until one of its jobs completes, a target has at most `UNTRIED` jobs per slot in flight."""
    state, frontier = fans(100), Frontier(1000)
    out = 2 * UNTRIED
    assert len(admitted(frontier, state, range(10, 110))) == out
    assert admitted(frontier, state, range(10 + out, 110)) == []
    frontier.reported("fan", result(10, (O_VALUE, b"v")))
    assert "fan" in frontier.free  # spawned nothing: never held back again
    assert len(admitted(frontier, state, range(10 + out, 110))) == 100 - out


def test_spawners_stop_at_the_limit_then_go_one_per_slot():
    """A spawner that would pass the limit ends the packet; over it, one per free slot."""
    state, frontier = fans(100), Frontier(1000)
    frontier.spawns["fan"] = 300.0
    first = admitted(frontier, state, range(10, 110))
    assert first == [10, 11]  # 101 live chains + 2 x 300 expected <= 1,000 < + 3 x 300
    assert admitted(frontier, state, range(12, 110)) == []  # two in flight, two slots
    apply(state, (R_DONE, 10, (O_SPAWN, tuple(spec(5000 + i, "leaf") for i in range(300)),
                               None), {}))
    frontier.reported("fan", result(10, (O_SPAWN, (None,) * 300, None)))
    assert admitted(frontier, state, range(12, 110)) == [12]  # over the limit, a slot free
    assert admitted(frontier, state, range(13, 110)) == []
