"""Drawing the progress model as one rich renderable: header, bar, targets, longest, messages."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from fntree.debug import debug_command
from fntree.progress.model import Counts, RunView
from fntree.resources import format_memory
from fntree.runtime.events import Failure
from fntree.runtime.records import Task

MAX_TARGET_ROWS = 20


def seconds(value: float) -> str:
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
    text.append(f" · {seconds(elapsed)} · ")
    text.append(f"{rate:,.0f}", "bold")
    text.append(" jobs/s" + (f" · leader {view.epoch}" if view.epoch > 1 else "") + "\n")
    all_done = total.done + view.done_before
    known = total.known() + view.done_before
    _bar(text, known, all_done, 40)
    text.append(f" {all_done:,} / {known:,} jobs done", "bold")
    if total.cached:
        text.append(f", {total.cached:,} from the cache")
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


def _target_lines(text: Text, view: RunView, total: Counts) -> None:
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
                    f"{seconds(elapsed):>7}  {task.res.cpu:>4g}  {memory}")


def _failure_panel(view: RunView, failure: Failure) -> Panel:
    what = "no retries left" if failure.permanent else "will be retried"
    body = Text(failure.message, style="bold")
    tail = failure.log_tail.rstrip("\n").splitlines()[-10:]
    if tail:
        body.append("\n" + "\n".join(tail), style="dim")
    if failure.permanent:
        body.append("\ndebug it: " + debug_command(view.jobstore, failure.job_id))
    same = view.failure_kinds[failure.name, failure.message] if failure.permanent else 0
    more = f" ({view.failure_count} failures so far)" if view.failure_count > 1 else ""
    if same > 1:
        more = f" ({same} \u00d7 the same, {view.failure_count} failures so far)"
    return Panel(body, title=f"{failure.name} {failure.job_id} failed on attempt "
                 f"{failure.attempt}, {what}{more}", title_align="left",
                 border_style="red" if failure.permanent else "yellow")


# -- the terminal -------------------------------------------------------------------------
