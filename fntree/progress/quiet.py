"""The display of `--quiet`: nothing while the run goes, one summary line at its end.

Failures are printed by logging (the first of each kind in full) and grouped in the
summary of a failed run; this view adds only the line that says how the run ended.
"""

from __future__ import annotations

from rich.console import Console

from fntree.progress.model import RunView
from fntree.progress.render import seconds


class QuietProgress(RunView):
    """One line when the leader stops: completed or stopped, after how long, how many jobs."""

    shows_messages = shows_failures = False

    def __init__(self, console: Console | None = None) -> None:
        super().__init__()
        self.console = console or Console(stderr=True)

    def finished(self, ok: bool) -> None:
        super().finished(ok)
        t = self.totals()
        failed = f", {t.failed:,} failed" if t.failed else ""
        self.console.print(f"[fntree] {'completed' if ok else 'stopped'} after "
                           f"{seconds(self.elapsed(self.clock()))}: "
                           f"{t.done:,} jobs done{failed}",
                           markup=False, highlight=False, soft_wrap=True)
