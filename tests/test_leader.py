"""What the leader holds while it runs: the live chains, not the jobs it ever made."""

from __future__ import annotations

import gc
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


class Thresholds(Observer):
    """Keeps the garbage collector's thresholds seen while the leader reports completions."""

    def __init__(self) -> None:
        self.seen: set[tuple[int, int, int]] = set()

    def completed(self, name: str, result: Result) -> None:
        self.seen.add(gc.get_threshold())


def test_young_collections_are_rarer_while_running(store: Path, tmp_path: Path) -> None:
    """The leader raises the young generation's threshold while it runs and puts the
    caller's thresholds back when the run ends, whether it completed or failed."""
    before = gc.get_threshold()
    watch = Thresholds()
    assert fntree.run(wf.fan(20), jobstore=store, observers=[watch]) == sum(range(20))
    assert watch.seen == {(max(leader.GC_YOUNG, before[0]), *before[1:])}
    assert gc.get_threshold() == before
    with pytest.raises(fntree.WorkflowFailed):
        fntree.run(wf.local_then_fail(str(tmp_path / "marker")),
                   jobstore=tmp_path / "failing", retry_count=0)
    assert gc.get_threshold() == before
