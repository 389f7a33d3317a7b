"""The three displays of the progress model: a terminal, a notebook cell, plain lines."""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.text import Text

from fntree.debug import debug_command
from fntree.progress.model import Counts, RunView
from fntree.progress.render import render, seconds
from fntree.runtime.events import Failure, Observer
from fntree.runtime.records import Result, Task
from fntree.runtime.snapshot import Snapshot


class LiveProgress(RunView):
    """The display on a terminal, drawn by rich's refresh thread."""

    def __init__(self, console: Console | None = None, refresh_per_second: float = 4) -> None:
        super().__init__()
        self.console = console or Console(stderr=True)
        self.refresh_per_second = refresh_per_second
        self._live: Live | None = None
        self._redirected: list[tuple[logging.StreamHandler[Any], Any]] = []

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        try:
            yield render(self, width=options.max_width)
        except RuntimeError:  # a container changed size under the drawing thread
            yield Text("")

    def started(self, jobstore: str, epoch: int, snapshot: Snapshot) -> None:
        super().started(jobstore, epoch, snapshot)
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

    def started(self, jobstore: str, epoch: int, snapshot: Snapshot) -> None:
        super().started(jobstore, epoch, snapshot)
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


# line-height "normal": at any other, the box-drawing characters of a panel's sides and the
# bars do not meet (checked in Chromium: tests/test_notebook_html.py).
_HTML = ('<pre style="white-space:pre;overflow-x:auto;line-height:normal;font-size:12px;'
         'margin:0;padding:4px 0;'
         'font-family:Menlo,\'DejaVu Sans Mono\',consolas,\'Courier New\',monospace">{code}</pre>')


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

    shows_messages = shows_failures = False  # logging prints them (it names no message)

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
        eta = self.eta(now)
        left = "" if eta is None else f", about {seconds(eta[0])} left" + (
            f" (+{eta[1]:,} not yet timed)" if eta[1] else "")
        return (f"{seconds(self.elapsed(now))}: {t.done:,}/{t.known():,} jobs done "
                f"({_from_cache(t)}{t.waiting:,} waiting, {t.ready:,} ready, "
                f"{t.queued:,} queued, {t.running:,} running, {t.failed:,} failed, "
                f"{t.retried:,} retried), {self.completions / self.elapsed(now):,.0f} jobs/s"
                f"{left}")

    def _tick(self) -> None:
        if time.monotonic() >= self._next:
            self._next = time.monotonic() + self.interval
            self._line(self._summary())

    def started(self, jobstore: str, epoch: int, snapshot: Snapshot) -> None:
        super().started(jobstore, epoch, snapshot)
        done = snapshot.count("done")
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


def _from_cache(counts: Counts) -> str:
    return f"{counts.cached:,} cached, " if counts.cached else ""
