"""The live progress display: a subscriber to the leader's events, drawn with rich.

It keeps per-target counts (queued, running, done, failed, retried) that the
hooks update in O(1), and rich's own refresh thread draws them a few times a
second, so a run at thousands of jobs per second pays only for the counting.
"""

from __future__ import annotations

import time
from collections import defaultdict

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from fntree.runtime.events import Failure, Observer
from fntree.runtime.records import Result, Task


class _Counts:
    __slots__ = ("done", "failed", "retried", "running")

    def __init__(self) -> None:
        self.running = self.done = self.failed = self.retried = 0


class LiveProgress(Observer):
    """A table of targets with their counts, the overall rate and the latest messages."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.counts: dict[str, _Counts] = defaultdict(_Counts)
        self.messages: list[str] = []
        self.started_at = time.monotonic()
        self.done_before = 0
        self._live: Live | None = None

    def started(self, jobstore: str, epoch: int, done: int, live: int) -> None:
        self.jobstore = jobstore
        self.done_before = done
        self.started_at = time.monotonic()
        self._live = Live(self, console=self.console, refresh_per_second=4, transient=False)
        self._live.start()

    def issued(self, tasks: list[Task]) -> None:
        for task in tasks:
            self.counts[task.name].running += 1

    def completed(self, name: str, result: Result) -> None:
        counts = self.counts[name]
        counts.done += 1
        if not result.chained:
            counts.running -= 1

    def failed(self, failure: Failure) -> None:
        counts = self.counts[failure.name]
        counts.running -= 1
        if failure.permanent:
            counts.failed += 1
        else:
            counts.retried += 1

    def message(self, name: str, job_id: str, text: str) -> None:
        self.messages = [*self.messages[-4:], f"{name} {job_id[:8]}: {text}"]

    def finished(self, ok: bool) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    def __rich__(self) -> RenderableType:
        elapsed = max(time.monotonic() - self.started_at, 1e-9)
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("target", "running", "done", "retried", "failed"):
            table.add_column(column, justify="left" if column == "target" else "right")
        done = 0
        for name, c in sorted(self.counts.items()):
            done += c.done
            table.add_row(name, str(max(c.running, 0)), str(c.done), str(c.retried),
                          Text(str(c.failed), style="red" if c.failed else ""))
        summary = Text(f"{done} jobs done in {elapsed:.1f}s ({done / elapsed:.0f} jobs/s)",
                       style="bold")
        parts: list[RenderableType] = [summary, table]
        parts.extend(Text(m, style="dim") for m in self.messages)
        return Group(*parts)
