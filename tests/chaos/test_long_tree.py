"""The long tree's lane, small: a few thousand jobs, values across the inline limit, leader
kills at steps of compactions while running and at random instants (tests/chaos/long.py runs
the long one: `python -m tests.chaos --long-tree`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from conftest import TALLY
from harness import Tally
from long import long_tree_campaign


def test_a_small_long_tree_through_kills_in_compactions_is_exact(tmp_path: Path) -> None:
    """Kills at compaction steps and at random instants: check sound after each, value exact."""
    tally, counts = Tally(), Counter[str]()
    long_tree_campaign(tmp_path, 4, width=4, leaves=800, tally=tally, counts=counts,
                       floor=10_000, instant=(0.5, 2.0),
                       cycle=("compact.write", "compact.rename", "compact.snapshot", "random",
                              "compact.segment"), ratio=0.25)
    print(f"\nlong tree (small): {dict(counts)}; {tally.leader_kills} kills, "
          f"{tally.restarts} restarts, {tally.checks} checks")
    assert tally.trees == 1
    assert sum(n for kind, n in counts.items() if kind.startswith("compact.")
               and "not reached" not in kind and "ended" not in kind) >= 2
    TALLY["leader kills"] += tally.leader_kills
    TALLY["restarts"] += tally.restarts
    TALLY["check runs"] += tally.checks
    TALLY["trees completed"] += 1
    TALLY["jobs in those trees"] += tally.jobs
