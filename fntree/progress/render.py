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

MAX_TARGET_ROWS = 8  # with more targets: the busiest 7 and a row for the others
MAX_NAME = 24  # columns of a target's name, at most
MIN_BAR = 8  # a target's bar is left out rather than drawn narrower
STYLES = {"running": "bold", "failed": "bold red", "retried": "yellow", "cached": "cyan"}


def seconds(value: float) -> str:
    value = max(value, 0.0)
    if value < 60:
        return f"{value:.1f}s"
    minutes, seconds = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def render(view: RunView, now: float | None = None, width: int = 80) -> RenderableType:
    """The whole display as one rich renderable, `width` columns wide.

    The header, the summary and the messages wrap; the table of targets is
    fitted to the width (names cut, columns dropped, many targets collapsed into
    "N others"). It is built from lines of `Text` padded by hand, because rich's
    tables cost milliseconds a frame to measure, and a frame is drawn four times
    a second.
    """
    now = view.clock() if now is None else now
    width = max(width, 40)
    total = view.totals()
    parts: list[RenderableType] = [_header(view, now, total, width)]
    table = Text(no_wrap=True, overflow="ellipsis")
    _target_lines(table, view, total, width)
    longest = [] if view.ended_at is not None else view.longest(now)
    if longest:
        _longest_lines(table, longest, width)
    parts.append(table)
    messages = list(view.messages)
    if messages:
        lines = Text("\nmessages", "bold", no_wrap=False, overflow="fold")
        for message in messages:
            lines.append("\n" + message, "dim")
        parts.append(lines)
    failures = list(view.failures)
    if view.ended_at is not None:  # a failure that a retry made good is old news
        failures = [f for f in failures if f.permanent]
    if failures:
        parts.append(_failure_panel(view, failures[-1]))
    return Group(*parts)


def _header(view: RunView, now: float, total: Counts, width: int) -> Text:
    ended = view.ended_at is not None
    text = Text(no_wrap=False, overflow="fold")  # wraps even on a console that soft-wraps
    text.append("fntree ", "bold")
    if ended:
        text.append("completed" if view.ok else "stopped", "green" if view.ok else "red")
    else:
        text.append("running")
    text.append(f" · {seconds(view.elapsed(now))} · ")
    text.append(f"{view.rate(now):,.0f}", "bold")
    text.append(" jobs/s" + (f" · leader {view.epoch}" if view.epoch > 1 else ""))
    eta = view.eta(now)
    if eta is not None:
        text.append(" · about ")
        text.append(seconds(eta[0]), "bold")
        text.append(" left")
        if eta[1]:
            text.append(f" (+{eta[1]:,} job{'s' if eta[1] > 1 else ''} not yet timed)")
    text.append("\n")
    _bar(text, total.known(), total.done, min(40, width))
    text.append(f" {total.done:,} / {total.known():,} jobs done", "bold")
    if total.cached:
        text.append(f", {total.cached:,} cached")
    if total.failed:
        text.append(f", {total.failed:,} failed", "bold red")
    if not ended and total.left():
        text.append(" (total so far)")
    return text


def _bar(text: Text, total: int, done: int, width: int) -> None:
    filled = width * min(done, total) // max(total, 1)
    text.append("━" * filled, "green")
    text.append("─" * (width - filled), "grey50")


def _rows(view: RunView) -> list[tuple[str, Counts]]:
    """The targets to show: all of them, or the busiest and one row for the others."""
    rows = list(view.targets.items())
    if len(rows) <= MAX_TARGET_ROWS:
        return rows
    def busy(item: tuple[str, Counts]) -> tuple[int, ...]:
        c = item[1]
        return (c.running, c.queued, c.ready, c.failed, c.waiting)
    keep = {name for name, _ in sorted(rows, key=busy, reverse=True)[:MAX_TARGET_ROWS - 1]}
    others = Counts()
    for name, c in rows:
        if name not in keep:
            others.add(c)
    n = len(rows) - len(keep)
    return [(name, c) for name, c in rows if name in keep] + [(f"{n} others", others)]


def _columns(total: Counts) -> list[str]:
    """The states shown as columns: always the main ones, cached and retried when any."""
    columns = ["waiting", "ready", "queued", "running", "done"]
    if total.cached:
        columns.append("cached")
    columns.append("failed")
    if total.retried:
        columns.append("retried")
    return columns


def _target_lines(text: Text, view: RunView, total: Counts, width: int) -> None:
    rows = _rows(view)
    columns = _columns(total)
    sizes = [max(len(c), len(f"{getattr(total, c):,}")) for c in columns]
    numbers = sum(sizes) + len(sizes)  # each column with its space before it
    name_width = min(max([6, *(len(name) for name, _ in rows)]), MAX_NAME, width - numbers - 1)
    name_width = max(name_width, 6)
    bar = width - name_width - numbers - 2
    bar = bar if bar >= MIN_BAR else 0
    text.append(f"\n{'target':<{name_width}}", "bold")
    for column, size in zip(columns, sizes, strict=True):
        text.append(f" {column:>{size}}", "bold")
    for name, c in [*rows, ("all", total)]:
        text.append(f"\n{_cut(name, name_width):<{name_width}}", "bold" if name == "all" else "")
        for column, size in zip(columns, sizes, strict=True):
            n = max(getattr(c, column), 0)
            style = STYLES.get(column, "") if n else ""
            text.append(f" {n:>{size},}", style)
        if bar and name != "all":
            text.append("  ")
            _bar(text, c.known(), c.done, bar)


def _cut(name: str, width: int) -> str:
    return name if len(name) <= width else name[:width - 1] + "…"


def _longest_lines(text: Text, longest: list[tuple[Task, float]], width: int) -> None:
    name_width = min(max([15, *(len(task.name) for task, _ in longest)]), MAX_NAME,
                     max(width - 44, 8))
    text.append(f"\n\n{'running longest':<{name_width}}  {'job':<16}  elapsed   cpu  memory",
                "bold")
    for task, elapsed in longest:
        memory = format_memory(task.res.memory) if task.res.memory else "-"
        text.append(f"\n{_cut(task.name, name_width):<{name_width}}  {task.job_id:016x}  "
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
