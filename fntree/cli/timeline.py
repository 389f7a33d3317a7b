"""`fntree timeline DIR`: the timeline of a run as one self-contained HTML page.

The page holds its data (JSON) and its script (timeline.js, beside this module),
and loads nothing: it works offline and from a file. One lane per worker slot,
a bar per completed job coloured by target, a red mark per failed attempt, a
dashed line where a leader (re)started. Zoom and pan are the script's: the wheel
or the +/- buttons zoom around a point, dragging pans, and at every scale jobs
narrower than a pixel are drawn as one aggregate bar per run of neighbours
(its tooltip counts them by target), so that none is lost. `#view=A,B` in the
page's address opens it on that part of the run (fractions of its width).

A run restarted later is drawn as segments: each stretch of activity (leaders
and jobs) keeps its own scale, and an idle gap longer than `GAP_FRACTION` of
the active time (and `MIN_GAP` seconds) is collapsed to a narrow band saying
how long it was. Axis labels are the time since the run's first start, in one
format for the whole view.

The event log does not say which worker ran a job, so lanes are inferred: jobs
sorted by start are packed greedily into the lowest free lane, which uses as
few lanes as there were jobs running at once.

When the event log's oldest parts were folded into its rollup (the archive is
kept within a budget: fntree/runtime/eventrollup.py), the figures count every
job but the chart draws the jobs of the kept parts only, and the page says so.

Under the chart, per target: the memory and time declared (`memory=`, `time=`)
beside the most any job used (its own process tree's peak memory, the worker's
baseline left out, and its longest run), and a suggestion for each.
"""

from __future__ import annotations

import argparse
import heapq
import html
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from fntree.cli.stats import RunStats, Span
from fntree.resources import format_memory, format_memory_option
from fntree.runtime.eventparts import read_events
from fntree.runtime.eventrollup import Rollup
from fntree.runtime.eventrollup import load as load_rollup
from fntree.runtime.store import JobStore

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7",
           "#9c755f", "#bab0ac", "#86bcb6", "#d37295", "#a0cbe8", "#8cd17d", "#f1ce63")
MAX_BARS = 200_000
GAP_FRACTION = 0.1   # an idle gap longer than this share of the active time is collapsed
MIN_GAP = 1.0        # seconds: shorter gaps are never collapsed
WORKER_ROOM = 64 << 20  # bytes: what a suggested memory= leaves for the worker's own Python
SCRIPT = Path(__file__).with_name("timeline.js")


class Declared:
    """What one target's jobs asked for: the largest memory (bytes) and time (seconds)."""

    __slots__ = ("memory", "time")

    def __init__(self) -> None:
        self.memory: int | None = None
        self.time: float | None = None

    def add(self, memory: Any, time: Any) -> None:
        if memory:
            self.memory = max(self.memory or 0, int(memory))
        if time:
            self.time = max(self.time or 0.0, float(time))


def tap_declared(events: Iterable[dict[str, Any]],
                 declared: dict[str, Declared]) -> Iterator[dict[str, Any]]:
    """`events` as they are, noting in `declared` what each target's issued jobs asked for."""
    for event in events:
        if event.get("ev") == "issued":
            declared.setdefault(event["name"], Declared()).add(event.get("memory"),
                                                                event.get("time"))
        yield event


def gather(store: JobStore, cut: list[str] | None = None) -> tuple[RunStats,
                                                                  dict[str, Declared]]:
    """The run's figures and each target's declared resources, in one pass of its events
    (what is missing from them, in sentences, appended to `cut`)."""
    options = store.config().get("options", {})
    cores = options.get("max_cpus")
    rollup = load_rollup(store.paths, cut)
    declared = folded_declared(rollup)
    stats = RunStats(float(cores) if cores else None, rollup)
    stats.add(tap_declared(read_events(store.paths, cut), declared))
    return stats, declared


def folded_declared(rollup: Rollup | None) -> dict[str, Declared]:
    """What each target declared in the events of the parts folded into `rollup`."""
    declared: dict[str, Declared] = {}
    for name, (memory, time) in (rollup.declared.items() if rollup is not None else ()):
        declared.setdefault(name, Declared()).add(memory, time)
    return declared


def pack_lanes(spans: list[Span]) -> list[int]:
    """A lane for each span (in the order given): the lowest lane free at its start."""
    order = sorted(range(len(spans)), key=lambda i: spans[i].start)
    lanes = [0] * len(spans)
    busy: list[tuple[float, int]] = []  # (end, lane) of spans still running
    free: list[int] = []
    count = 0
    for i in order:
        span = spans[i]
        while busy and busy[0][0] <= span.start + 1e-6:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            lane = heapq.heappop(free)
        else:
            lane, count = count, count + 1
        lanes[i] = lane
        heapq.heappush(busy, (span.start + span.wall, lane))
    return lanes


def segments(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The stretches of activity in `intervals`, split where an idle gap is long enough."""
    if not intervals:
        return [(0.0, 1e-3)]
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    active = sum(end - start for start, end in merged)
    gap = max(MIN_GAP, GAP_FRACTION * active)
    kept = [merged[0]]
    for start, end in merged[1:]:
        if start - kept[-1][1] > gap:
            kept.append([start, end])
        else:
            kept[-1][1] = max(kept[-1][1], end)
    return [(start, max(end, start + 1e-3)) for start, end in kept]


def timeline_data(stats: RunStats) -> dict[str, Any]:
    """What the page's script draws, as plain lists (times in seconds from the run's start)."""
    spans = stats.spans[:MAX_BARS]
    lanes = pack_lanes(spans)
    names = list(stats.targets)
    index = {name: k for k, name in enumerate(names)}
    starts = [s.start for s in spans] + [float(f["t"]) for f in stats.failures]
    starts += [start for start, _ in stats.leaders]
    t0 = min(starts, default=0.0)
    intervals = [(s.start - t0, s.start + s.wall - t0) for s in spans]
    intervals += [(start - t0, end - t0) for start, end in stats.leaders]
    intervals += [(float(f["t"]) - t0,) * 2 for f in stats.failures]
    order = sorted(range(len(spans)), key=lambda i: (lanes[i], spans[i].start))
    jobs: dict[str, list[Any]] = {key: [] for key in ("s", "w", "l", "k", "id", "a", "c", "m")}
    for i in order:
        s = spans[i]
        for key, value in (("s", round(s.start - t0, 6)), ("w", round(s.wall, 6)),
                           ("l", lanes[i]), ("k", index.get(s.name, 0)), ("id", s.job),
                           ("a", s.attempt), ("c", round(s.cpu_time, 4)), ("m", s.rss)):
            jobs[key].append(value)
    return {
        "targets": [[name, PALETTE[k % len(PALETTE)]] for k, name in enumerate(names)],
        "lanes": max(lanes, default=-1) + 1,
        "segments": [[round(a, 6), round(b, 6)] for a, b in segments(intervals)],
        "jobs": jobs,
        "failures": [[round(float(f["t"]) - t0, 6), f["name"], f["job"], f["attempt"],
                      str(f.get("message", ""))[:300]] for f in stats.failures],
        "leaders": [round(start - t0, 6) for start, _ in stats.leaders],
        "cut": len(stats.spans) > MAX_BARS,
    }


def render_timeline(stats: RunStats, jobstore: str,
                    declared: dict[str, Declared] | None = None) -> str:
    """The page, as a string."""
    data = json.dumps(timeline_data(stats), separators=(",", ":")).replace("</", "<\\/")
    script = SCRIPT.read_text(encoding="utf-8")
    f = stats.run_figures()
    legend = " ".join(
        f'<span class="key"><i style="background:{PALETTE[k % len(PALETTE)]}"></i>'
        f'{html.escape(n)} ({t.count:,})</span>' for k, (n, t) in enumerate(stats.targets.items()))
    legend += ('<span class="key" style="color:#d62728">▼ failed attempt</span>'
               '<span class="key">┆ a leader started</span>'
               '<span class="key"><i class="agg"></i>jobs narrower than a pixel, together</span>')
    note = (f"<p>Showing the first {MAX_BARS:,} jobs.</p>" if len(stats.spans) > MAX_BARS
            else "")
    folded = stats.folded_note()
    if folded:
        note += (f"<p>{html.escape(folded)}: the chart draws the jobs of the kept parts; "
                 "the figures above count them all.</p>")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>fntree timeline: {html.escape(jobstore)}</title>
<style>{STYLE}</style></head><body>
<h1>fntree timeline</h1>
<div class="sub">{html.escape(jobstore)} · {f["jobs"]:,} jobs · {_seconds(f["wall"])} of leader
time ({f["leaders"]} leader(s)) · {f["jobs_per_second"]:,.0f} jobs/s · {f["cores"]:g} cores,
busy {100 * f["core_busy"]:.0f}% · {f["failures"]} failed attempt(s)</div>
<div>{legend}</div>
{note}<div class="controls"><button id="zoom-out" title="zoom out (-)">&minus;</button><button
id="zoom-in" title="zoom in (+)">+</button><button id="reset"
title="whole run (0)">whole run</button>
<span id="view"></span><span class="hint">wheel: zoom · drag: pan · double-click: zoom in</span>
</div>
<div id="chart"><noscript>The timeline is drawn by JavaScript; enable it for this page.</noscript>
</div>
{_resources_table(stats, declared or {})}
<script id="fntree-data" type="application/json">{data}</script>
<script>{script}</script>
</body></html>
"""


STYLE = """
body { font-family: sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; margin: 0 0 4px 0; }
.sub { color: #555; margin-bottom: 10px; }
.key { margin-right: 14px; white-space: nowrap; font-size: 13px; }
.key i { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
         vertical-align: -1px; }
.key i.agg, rect.agg { background: repeating-linear-gradient(45deg, #666 0 2px, #ccc 2px 4px); }
.controls { margin: 10px 0 4px 0; font-size: 13px; }
.controls button { font-size: 14px; min-width: 30px; margin-right: 4px; }
#view { margin-left: 10px; color: #333; }
.hint { margin-left: 14px; color: #888; }
#chart { user-select: none; cursor: grab; overflow-x: hidden; }
#chart.dragging { cursor: grabbing; }
#chart .error { color: #c00; font-weight: bold; }
table { border-collapse: collapse; margin-top: 14px; font-size: 13px; }
td, th { padding: 2px 10px; text-align: right; white-space: nowrap; }
td:first-child, th:first-child { text-align: left; }
th { border-bottom: 1px solid #999; }
td.over { color: #c00; font-weight: bold; }
td.slack { color: #a60; }
caption { text-align: left; font-weight: bold; padding-bottom: 4px; }
.note { color: #555; font-size: 12px; max-width: 1100px; }
"""


def _resources_table(stats: RunStats, declared: dict[str, Declared]) -> str:
    """Per target: jobs and times, and memory and time declared beside the most used."""
    rows = []
    for name, t in stats.targets.items():
        asked = declared.get(name, Declared())
        used_memory = t.rss * 1024
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{t.count:,}</td><td>{_seconds(t.wall)}</td>"
            f"<td>{_seconds(t.wall / t.count if t.count else 0)}</td><td>{t.attempts:,}</td>"
            f"<td>{t.failures:,}</td>"
            f"{_use(t.wall_max, asked.time, _seconds)}"
            f"<td>{_suggest_time(t.wall_max) if t.count else '-'}</td>"
            f"{_use(used_memory, asked.memory, format_memory)}"
            f"<td>{_suggest_memory(used_memory) if t.rss else '-'}</td>"
            "</tr>")
    return ("<table id=\"targets\"><caption>Per target: what was declared, and the most one "
            "job used (memory: the job's own process tree at its peak)</caption>"
            "<tr><th>target</th><th>jobs</th><th>wall total</th><th>mean</th><th>attempts</th>"
            "<th>failed</th><th>longest</th><th>time=</th><th>% of time=</th>"
            "<th>suggest time=</th><th>peak memory</th><th>memory=</th><th>% of memory=</th>"
            f"<th>suggest memory=</th></tr>{''.join(rows)}</table>"
            f"<p class=\"note\">Suggested: twice the longest run (at least a minute), and a "
            f"quarter more than the largest peak plus {WORKER_ROOM >> 20} MiB for the worker's "
            "own Python, which a cluster counts in the job's memory. Red: a job went over what "
            "was declared; amber: jobs used under a quarter of it.</p>")


def _use(used: float, declared: float | None, fmt: Any) -> str:
    """Three cells: what was used, what was declared, and the share of it used."""
    shown = fmt(used) if used else "-"
    if not declared:
        return f"<td>{shown}</td><td>not declared</td><td></td>"
    share = used / declared
    css = ' class="over"' if share > 1 else ' class="slack"' if share < 0.25 else ""
    return f"<td>{shown}</td><td>{fmt(declared)}</td><td{css}>{100 * share:.0f}%</td>"


def _suggest_memory(peak: int) -> str:
    return format_memory_option(_round_up(peak * 1.25 + WORKER_ROOM))


def _round_up(amount: float) -> int:
    """`amount` rounded up to two significant binary digits (1, 1.5, 2, 3, 4, 6... times 2^k)."""
    if amount <= 1:
        return 1
    power = 2 ** math.floor(math.log2(amount))
    for step in (1, 1.5, 2):
        if power * step >= amount:
            return int(power * step)
    return int(2 * power)


def _suggest_time(longest: float) -> str:
    """A time= with room: twice the longest run, at least a minute, in round units."""
    seconds = max(60.0, 2 * longest)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f'"{math.ceil(seconds / size)}{unit}"'
    return f'"{math.ceil(seconds)}s"'


def _seconds(value: float) -> str:
    if value == 0:
        return "0s"
    if value < 1:
        return f"{value * 1000:.0f}ms" if value >= 0.001 else f"{value * 1000:.2f}ms"
    if value < 120:
        return f"{value:.1f}s"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes}m{seconds:02d}s"


def write_timeline(path: Path, stats: RunStats, jobstore: str,
                   declared: dict[str, Declared] | None = None) -> None:
    """Write the page; without `declared`, it is read from the store's events."""
    if declared is None:
        paths = JobStore.open(jobstore).paths
        declared = folded_declared(load_rollup(paths))
        for _ in tap_declared(read_events(paths), declared):
            pass
    path.write_text(render_timeline(stats, jobstore, declared), encoding="utf-8")


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("timeline", help="write a run's timeline as an HTML page")
    parser.add_argument("jobstore", metavar="DIR")
    parser.add_argument("-o", "--output", metavar="FILE", default="timeline.html",
                        help="where to write the page (default: timeline.html)")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace, console: Console) -> int:
    store = JobStore.open(args.jobstore)
    cut: list[str] = []
    stats, declared = gather(store, cut)
    for note in cut:
        console.print(f"note: {note}", markup=False)
    folded = stats.folded_note()
    if folded:
        console.print(f"note: {folded}; the timeline draws the kept ones", markup=False)
    path = Path(args.output)
    write_timeline(path, stats, str(store.paths.root), declared)
    console.print(f"timeline written to {path} ({len(stats.spans):,} jobs; it needs no "
                  "network: open it in a browser)", markup=False)
    return 0
