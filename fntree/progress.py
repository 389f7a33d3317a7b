"""Live progress: subscribers to the leader's events that show a run as it goes.

`RunView` is the model. Its hooks only count, in O(1) per job: per target, the
jobs queued (spawned, not yet issued), running, done, failed and retried; the
packets in flight, to know which job of each is running and since when; the
last messages and failures. The total is what is known so far: it grows as
completions spawn children, and the display says so.

Three views draw it:

- `LiveProgress`: a rich `Live` table on a terminal, redrawn by rich's own
  thread four times a second, so the leader pays only for the counting;
- `NotebookProgress`: the same table in a Jupyter cell, an HTML display that a
  thread updates twice a second (`fntree.run` adds it by itself in a notebook);
- `PlainProgress`: a progress line every few seconds, for logs and CI.

The leader's thread mutates the model while a drawing thread reads it: readers
copy the containers they walk (`list(d.values())` is atomic under the GIL) and
tolerate counts that are a moment apart.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from fntree.debug import debug_command
from fntree.resources import format_memory
from fntree.runtime.events import Failure, Observer
from fntree.runtime.records import O_SPAWN, Result, Task

MAX_TARGET_ROWS = 20
LONGEST_ROWS = 5
MESSAGE_ROWS = 5
RATE_WINDOW = 5.0  # seconds over which the current rate is measured


class _Counts:
    __slots__ = ("done", "failed", "queued", "retried", "running")

    def __init__(self) -> None:
        self.queued = self.running = self.done = self.failed = self.retried = 0

    def known(self) -> int:
        return self.queued + self.running + self.done + self.failed


class _Packet:
    """Tasks issued together: a worker runs them one after another."""

    __slots__ = ("clock", "left", "pos", "tasks")

    def __init__(self, tasks: list[Task], now: float) -> None:
        self.tasks = tasks
        self.clock = now  # when the task now running started, as far as we know
        self.left = len(tasks)
        self.pos = 0


class RunView(Observer):
    """What the displays show, kept up to date by the leader's hooks.

    `clock` gives the time in seconds since the epoch (the workers' `start` times
    are on that scale); tests pass their own.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.targets: dict[str, _Counts] = {}
        self.pending: set[int] = set()
        self.running: dict[int, _Packet] = {}
        self.packets: set[_Packet] = set()
        self.messages: deque[str] = deque(maxlen=MESSAGE_ROWS)
        self.failures: deque[Failure] = deque(maxlen=1)
        self.failure_count = 0
        self.jobstore = ""
        self.epoch = 0
        self.done_before = 0
        self.started_at = clock()
        self.ended_at: float | None = None
        self.ok: bool | None = None
        self._last: _Packet | None = None
        self._samples: deque[tuple[float, int]] = deque()

    def _counts(self, name: str) -> _Counts:
        counts = self.targets.get(name)
        if counts is None:
            counts = self.targets[name] = _Counts()
        return counts

    # -- hooks -----------------------------------------------------------------------
    def started(self, jobstore: str, epoch: int, done: int, live: int) -> None:
        self.jobstore, self.epoch, self.done_before = jobstore, epoch, done
        self.started_at = self.clock()

    def issued(self, tasks: list[Task]) -> None:
        packet = _Packet(tasks, self.clock())
        self.packets.add(packet)
        targets, pending, running = self.targets, self.pending, self.running
        for task in tasks:
            counts = targets.get(task.name) or self._counts(task.name)
            job = task.job_id
            if job in pending:
                pending.discard(job)
                counts.queued -= 1
            else:
                earlier = running.get(job)
                if earlier is not None:  # requeued by the leader without an event
                    counts.running -= 1
                    self._leave(earlier)
            counts.running += 1
            running[job] = packet

    def completed(self, name: str, result: Result) -> None:
        counts = self.targets.get(name) or self._counts(name)
        counts.done += 1
        packet = self.running.pop(result.job_id, None)
        if packet is not None:
            counts.running -= 1
            packet.left -= 1
            if packet.left <= 0:
                self.packets.discard(packet)
            self._last = packet
        elif result.job_id in self.pending:  # a follow-on its worker ran straight away
            self.pending.discard(result.job_id)
            counts.queued -= 1
            packet = self._last if result.chained else None
        if packet is not None:
            packet.clock = max(packet.clock, result.stats[0] + result.stats[1])
        outcome = result.outcome
        if outcome is not None and outcome[0] == O_SPAWN:
            self._spawned(outcome[1])
            if outcome[2] is not None:
                self._spawned((outcome[2],))

    def _spawned(self, specs: Any) -> None:
        targets, pending = self.targets, self.pending
        for spec in specs:
            (targets.get(spec.name) or self._counts(spec.name)).queued += 1
            pending.add(spec.job_id)
            if spec.deps:
                self._spawned(spec.deps)

    def _leave(self, packet: _Packet) -> None:
        packet.left -= 1
        if packet.left <= 0:
            self.packets.discard(packet)

    def failed(self, failure: Failure) -> None:
        counts = self._counts(failure.name)
        job = int(failure.job_id, 16)
        packet = self.running.pop(job, None)
        if packet is not None:
            counts.running -= 1
            self._leave(packet)
            packet.clock = max(packet.clock, self.clock())
        if failure.permanent:
            counts.failed += 1
        else:
            counts.retried += 1
            counts.queued += 1
            self.pending.add(job)
        self.failure_count += 1
        if failure.permanent or not self.failures or not self.failures[-1].permanent:
            self.failures.append(failure)  # a failure for good stays in view

    def message(self, name: str, job_id: str, text: str) -> None:
        self.messages.append(f"{name} {job_id[:8]}: {text}")

    def finished(self, ok: bool) -> None:
        self.ended_at = self.clock()
        self.ok = ok

    # -- figures for the views ---------------------------------------------------------
    def totals(self) -> _Counts:
        total = _Counts()
        for c in list(self.targets.values()):
            total.queued += c.queued
            total.running += c.running
            total.done += c.done
            total.failed += c.failed
            total.retried += c.retried
        return total

    def elapsed(self, now: float) -> float:
        return max((self.ended_at or now) - self.started_at, 1e-9)

    def rate(self, now: float, done: int) -> float:
        """Jobs per second over the last few seconds (the whole run's rate at first)."""
        samples = self._samples
        samples.append((now, done))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW:
            samples.popleft()
        first_t, first_done = samples[0]
        if now - first_t < 1.0:
            return done / self.elapsed(now)
        return (done - first_done) / (now - first_t)

    def longest(self, now: float, limit: int = LONGEST_ROWS) -> list[tuple[Task, float]]:
        """The jobs running longest: the running task of each packet, with its elapsed time."""
        found = []
        running = self.running
        for packet in list(self.packets):
            tasks = packet.tasks
            while packet.pos < len(tasks) and running.get(tasks[packet.pos].job_id) is not packet:
                packet.pos += 1
            if packet.pos < len(tasks):
                found.append((tasks[packet.pos], now - packet.clock))
        found.sort(key=lambda item: -item[1])
        return found[:limit]


# -- drawing -------------------------------------------------------------------------------
def _seconds(value: float) -> str:
    value = max(value, 0.0)
    if value < 60:
        return f"{value:.1f}s"
    minutes, seconds = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def render(view: RunView, now: float | None = None) -> RenderableType:
    """The whole display as one rich renderable.

    It is built as lines of one `Text`, padded by hand, because rich's tables
    cost milliseconds a frame to measure, and a frame is drawn four times a second.
    """
    now = view.clock() if now is None else now
    total = view.totals()
    elapsed = view.elapsed(now)
    ended = view.ended_at is not None
    rate = total.done / elapsed if ended else view.rate(now, total.done)
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("fntree ", "bold")
    if ended:
        text.append("completed" if view.ok else "stopped", "green" if view.ok else "red")
    else:
        text.append("running")
    text.append(f" · {_seconds(elapsed)} · ")
    text.append(f"{rate:,.0f}", "bold")
    text.append(" jobs/s" + (f" · leader {view.epoch}" if view.epoch > 1 else "") + "\n")
    all_done = total.done + view.done_before
    known = total.known() + view.done_before
    _bar(text, known, all_done, 40)
    text.append(f" {all_done:,} / {known:,} jobs done", "bold")
    if not ended:
        text.append(" (the total known so far)")
    _target_lines(text, view, total)
    longest = [] if ended else view.longest(now)
    if longest:
        _longest_lines(text, longest)
    messages = list(view.messages)
    if messages:
        text.append("\n\nmessages", "bold")
        for message in messages:
            text.append("\n" + message, "dim")
    failures = list(view.failures)
    if ended:  # a failure that a retry made good is old news
        failures = [f for f in failures if f.permanent]
    if not failures:
        return text
    return Group(text, _failure_panel(view, failures[-1]))


def _bar(text: Text, total: int, done: int, width: int) -> None:
    filled = width * min(done, total) // max(total, 1)
    text.append("━" * filled, "green")
    text.append("─" * (width - filled), "grey50")


def _target_lines(text: Text, view: RunView, total: _Counts) -> None:
    rows = list(view.targets.items())
    shown = rows[:MAX_TARGET_ROWS]
    width = max([6, *(len(name) for name, _ in shown)])
    width = min(width, 30)
    text.append(f"\n\n{'target':<{width}}  queued  running      done  failed  retried", "bold")
    for name, c in shown:
        text.append(f"\n{name[:width]:<{width}}  {max(c.queued, 0):>6,}  {max(c.running, 0):>7,}"
                    f"  {c.done:>8,}  ")
        text.append(f"{c.failed:>6,}", "bold red" if c.failed else "")
        text.append("  ")
        text.append(f"{c.retried:>7,}", "yellow" if c.retried else "")
        text.append("  ")
        _bar(text, c.known(), c.done, 24)
    if len(rows) > MAX_TARGET_ROWS:
        text.append(f"\n… {len(rows) - MAX_TARGET_ROWS} more targets", "dim")
    text.append(f"\n{'all':<{width}}  {max(total.queued, 0):>6,}  {max(total.running, 0):>7,}"
                f"  {total.done:>8,}  {total.failed:>6,}  {total.retried:>7,}", "bold")


def _longest_lines(text: Text, longest: list[tuple[Task, float]]) -> None:
    width = min(max([15, *(len(task.name) for task, _ in longest)]), 30)
    text.append(f"\n\n{'running longest':<{width}}  {'job':<16}  elapsed   cpu  memory", "bold")
    for task, elapsed in longest:
        memory = format_memory(task.res.memory) if task.res.memory else "-"
        text.append(f"\n{task.name[:width]:<{width}}  {task.job_id:016x}  "
                    f"{_seconds(elapsed):>7}  {task.res.cpu:>4g}  {memory}")


def _failure_panel(view: RunView, failure: Failure) -> Panel:
    what = "no retries left" if failure.permanent else "will be retried"
    body = Text(failure.message, style="bold")
    tail = failure.log_tail.rstrip("\n").splitlines()[-10:]
    if tail:
        body.append("\n" + "\n".join(tail), style="dim")
    if failure.permanent:
        body.append("\ndebug it: " + debug_command(view.jobstore, failure.job_id))
    more = f" ({view.failure_count} failures so far)" if view.failure_count > 1 else ""
    return Panel(body, title=f"{failure.name} {failure.job_id} failed on attempt "
                 f"{failure.attempt}, {what}{more}", title_align="left",
                 border_style="red" if failure.permanent else "yellow")


# -- the terminal -------------------------------------------------------------------------
class LiveProgress(RunView):
    """The display on a terminal, drawn by rich's refresh thread."""

    def __init__(self, console: Console | None = None, refresh_per_second: float = 4) -> None:
        super().__init__()
        self.console = console or Console(stderr=True)
        self.refresh_per_second = refresh_per_second
        self._live: Live | None = None
        self._redirected: list[tuple[logging.StreamHandler[Any], Any]] = []

    def __rich__(self) -> RenderableType:
        try:
            return render(self)
        except RuntimeError:  # a container changed size under the drawing thread
            return Text("")

    def started(self, jobstore: str, epoch: int, done: int, live: int) -> None:
        super().started(jobstore, epoch, done, live)
        if self._live is not None:
            return
        stderr = sys.stderr
        self._live = Live(self, console=self.console, auto_refresh=True, transient=False,
                          refresh_per_second=self.refresh_per_second, redirect_stderr=True)
        self._live.start()
        if sys.stderr is not stderr:  # log lines print above the display, not through it
            for logger in (logging.getLogger("fntree"), logging.getLogger()):
                for handler in logger.handlers:
                    if isinstance(handler, logging.StreamHandler) and handler.stream is stderr:
                        self._redirected.append((handler, handler.setStream(sys.stderr)))

    def finished(self, ok: bool) -> None:
        super().finished(ok)
        if self._live is not None:
            self._live.stop()  # draws the final state
            self._live = None
        for handler, stream in self._redirected:
            handler.setStream(stream)
        self._redirected.clear()


# -- the notebook ---------------------------------------------------------------------------
class NotebookProgress(RunView):
    """The display in a Jupyter cell: an HTML output that a thread updates in place."""

    def __init__(self, width: int = 110, interval: float = 0.5) -> None:
        super().__init__()
        self.width = width
        self.interval = interval
        self._handle: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _bundle(self) -> dict[str, str]:
        console = Console(file=io.StringIO(), record=True, width=self.width,
                          force_terminal=True, force_jupyter=False, color_system="truecolor")
        console.print(render(self))
        text = console.export_text(clear=False)
        html = console.export_html(inline_styles=True, code_format=_HTML)
        return {"text/plain": text, "text/html": html}

    def _show(self) -> None:
        try:
            bundle = self._bundle()
        except RuntimeError:  # a container changed size under the drawing thread
            return
        if self._handle is None:
            from IPython.display import display

            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._show()

    def started(self, jobstore: str, epoch: int, done: int, live: int) -> None:
        super().started(jobstore, epoch, done, live)
        self._show()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="fntree-progress", daemon=True)
        self._thread.start()

    def finished(self, ok: bool) -> None:
        super().finished(ok)
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._show()


_HTML = ('<pre style="white-space:pre;overflow-x:auto;line-height:1.25;font-size:12px;'
         'font-family:Menlo,\'DejaVu Sans Mono\',consolas,monospace">{code}</pre>')


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def notebook_display(observers: list[Observer]) -> list[Observer]:
    """The notebook display, when running in a Jupyter kernel and no display was given."""
    if any(isinstance(o, RunView) for o in observers) or not in_notebook():
        return []
    return [NotebookProgress()]


# -- logs and CI ------------------------------------------------------------------------------
class PlainProgress(RunView):
    """A progress line every `interval` seconds, for output that is not a terminal."""

    def __init__(self, console: Console | None = None, interval: float = 10.0) -> None:
        super().__init__()
        self.console = console or Console(stderr=True)
        self.interval = interval
        self._next = time.monotonic() + interval

    def _line(self, text: str) -> None:
        self.console.print(f"[fntree] {text}", markup=False, highlight=False, soft_wrap=True)

    def _summary(self) -> str:
        now = self.clock()
        t = self.totals()
        all_done = t.done + self.done_before
        return (f"{_seconds(self.elapsed(now))}: {all_done:,}/{t.known() + self.done_before:,} "
                f"jobs done ({t.running:,} running, {t.queued:,} queued, {t.failed:,} failed, "
                f"{t.retried:,} retried), {t.done / self.elapsed(now):,.0f} jobs/s")

    def _tick(self) -> None:
        if time.monotonic() >= self._next:
            self._next = time.monotonic() + self.interval
            self._line(self._summary())

    def started(self, jobstore: str, epoch: int, done: int, live: int) -> None:
        super().started(jobstore, epoch, done, live)
        again = f", {done:,} jobs done before" if epoch > 1 else ""
        self._line(f"leader {epoch} started on {jobstore}{again}")

    def issued(self, tasks: list[Task]) -> None:
        super().issued(tasks)
        self._tick()

    def completed(self, name: str, result: Result) -> None:
        super().completed(name, result)
        self._tick()

    def failed(self, failure: Failure) -> None:
        super().failed(failure)
        if failure.permanent:
            self._line(f"{failure.name} {failure.job_id} failed for good; debug it: "
                       f"{debug_command(self.jobstore, failure.job_id)}")

    def finished(self, ok: bool) -> None:
        super().finished(ok)
        self._line(("completed" if ok else "stopped") + " after " + self._summary())
