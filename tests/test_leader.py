"""What the leader holds while it runs: the live chains, not the jobs it ever made."""

from __future__ import annotations

from pathlib import Path

import pytest
import workflows as wf

import fntree
from fntree.progress.model import RunView
from fntree.runtime import leader
from fntree.runtime.events import Observer
from fntree.runtime.records import Result, Task


class LiveCount(Observer):
    """Follows the run through the progress model and keeps the most jobs it saw live."""

    def __init__(self) -> None:
        self.view = RunView()
        self.most = self.most_entries = 0

    def started(self, jobstore: str, epoch: int, snapshot: object) -> None:
        self.view.started(jobstore, epoch, snapshot)  # type: ignore[arg-type]

    def issued(self, tasks: list[Task]) -> None:
        self.view.issued(tasks)

    def completed(self, name: str, result: Result) -> None:
        self.view.completed(name, result)
        self.most = max(self.most, self.view.totals().left())
        self.most_entries = max(self.most_entries, len(self.view.jobs) + len(self.view.chains))


def test_wide_tree_holds_few_chains_live(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fans that spawn many children are issued a few at a time, so the live jobs stay near
    the frontier's limit instead of every fan's leaves at once."""
    monkeypatch.setattr(leader, "LIMIT_MIN", 0)  # the limit is then 2 * 2 slots * 256: 1,024
    count = LiveCount()
    width, leaves = 100, 100
    value = fntree.run(wf.wide(width, leaves), jobstore=store, max_cpus=2, observers=[count])
    assert value == width * sum(range(leaves))
    # The bound lets in a first packet per slot (8 fans each, before the leader knows they
    # spawn), then one fan per slot at a time.
    bound = 2 * 8 * leaves + 2 * leaves + width + 600
    assert count.most < bound, count.most
    assert count.most_entries < 2 * bound
    assert not count.view.jobs and not count.view.chains  # closed subtrees leave nothing
