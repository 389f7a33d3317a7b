"""Tests of fntree.runtime.snapshot: the state a starting leader hands its subscribers."""

from __future__ import annotations

from fntree.runtime.records import (
    O_SPAWN,
    O_VALUE,
    R_DONE,
    R_EPOCH,
    R_FAIL,
    R_ISSUE,
    R_ROOT,
    Res,
    Spec,
)
from fntree.runtime.snapshot import STATES, LiveChain, snapshot
from fntree.runtime.state import RunState, apply

RES = Res(None, None, 1.0, None)


def _spec(job: int, name: str, deps: tuple[Spec, ...] = ()) -> Spec:
    return Spec(job, name, b"k", b"", RES, (), deps)


def test_counts_every_state_per_target() -> None:
    """Done and cached from the journal's counts; waiting, ready and failed from the live
    chains; what an earlier leader had issued is ready once the new EPOCH is applied."""
    state = RunState()
    children = (_spec(2, "leaf"), _spec(3, "leaf"), _spec(4, "leaf"),
                _spec(5, "pair", deps=(_spec(6, "leaf"),)))
    for record in [(R_ROOT, _spec(1, "root"), {}), (R_EPOCH, 1, 0, "h"), (R_ISSUE, 1, 1),
                   (R_DONE, 1, (O_SPAWN, children, _spec(7, "sum")), {}),
                   (R_ISSUE, 2, 1), (R_DONE, 2, (O_VALUE, 2), {}, True),
                   (R_ISSUE, 3, 1), (R_FAIL, 3, 1, True, "boom", None),
                   (R_ISSUE, 4, 1), (R_EPOCH, 2, 0, "h")]:
        apply(state, record)
    shot = snapshot(state)
    zero = dict.fromkeys(STATES, 0)
    assert shot.targets == {"root": zero | {"done": 1},
                            "leaf": zero | {"done": 1, "cached": 1, "failed": 1, "ready": 2},
                            "pair": zero | {"waiting": 1}, "sum": zero | {"waiting": 1}}
    assert shot.count("done") == 2 and not shot.reports_start
    assert LiveChain(1, None, 3, 7, "sum", "waiting") in shot.chains  # one child closed
    assert LiveChain(5, 1, 1, 5, "pair", "waiting") in shot.chains
    assert LiveChain(6, 5, 0, 6, "leaf", "ready") in shot.chains
