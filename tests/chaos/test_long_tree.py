"""The long tree's lane, small: a few thousand jobs, values across the inline limit, leader
kills at the leader's own value writes, at a worker's value write, at steps of compactions
while running and at random instants (tests/chaos/long.py runs the long one:
`python -m tests.chaos --long-tree`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from conftest import TALLY
from harness import Tally
from long import CREATION, long_tree_campaign


def test_a_small_long_tree_through_kills_in_value_writes_and_compactions_is_exact(
        tmp_path: Path) -> None:
    """Kills at value writes (the leader's, a worker's), compaction steps and random instants:
    check sound after each (the creation's kills: an interrupted creation), value exact."""
    tally, counts = Tally(), Counter[str]()
    long_tree_campaign(tmp_path, 4, width=4, leaves=800, tally=tally, counts=counts,
                       floor=10_000, instant=(0.5, 2.0), patience=30.0, nth=(1, 1),
                       cycle=("objects.write@worker", "compact.write", "compact.rename",
                              "random", "compact.snapshot", "compact.segment"), ratio=0.25)
    print(f"\nlong tree (small): {dict(counts)}; {tally.leader_kills} kills, "
          f"{tally.restarts} restarts, {tally.checks} checks")
    assert tally.trees == 1
    assert all(counts[kind] == 1 for kind in CREATION), counts
    assert counts["objects.write@worker"] >= 1, counts
    assert sum(n for kind, n in counts.items() if kind.startswith("compact.")
               and "not reached" not in kind and "ended" not in kind) >= 1, counts
    TALLY["leader kills"] += tally.leader_kills
    TALLY["restarts"] += tally.restarts
    TALLY["check runs"] += tally.checks
    TALLY["trees completed"] += 1
    TALLY["jobs in those trees"] += tally.jobs
