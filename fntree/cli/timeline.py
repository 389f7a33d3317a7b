"""The timeline of a run as one self-contained HTML page (`fntree stats DIR --html FILE`).

One lane per worker slot, a bar per completed job coloured by target, a red
mark per failed attempt, a dashed line where a leader (re)started. The event
log does not say which worker ran a job, so lanes are inferred: jobs sorted by
start are packed greedily into the lowest free lane, which uses as few lanes as
there were jobs running at once (jobs of one packet run one after another, so
they share a lane).
"""

from __future__ import annotations

import heapq
import html
import math
from pathlib import Path

from fntree.cli.stats import RunStats, Span
from fntree.resources import format_memory

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7",
           "#9c755f", "#bab0ac", "#86bcb6", "#d37295", "#a0cbe8", "#8cd17d", "#f1ce63")
WIDTH = 1200
LEFT = 70
TOP = 40
MAX_BARS = 100_000


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


def _ticks(length: float) -> list[float]:
    """About ten round tick positions from 0 to `length` seconds."""
    raw = max(length, 1e-3) / 10
    step = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if step * factor >= raw:
            step *= factor
            break
    return [k * step for k in range(int(length / step) + 1)]


def render_timeline(stats: RunStats, jobstore: str) -> str:
    """The page, as a string."""
    spans = stats.spans[:MAX_BARS]
    lanes = pack_lanes(spans)
    names = list(stats.targets)
    colour = {name: PALETTE[k % len(PALETTE)] for k, name in enumerate(names)}
    starts = [s.start for s in spans] + [float(f["t"]) for f in stats.failures]
    starts += [start for start, _ in stats.leaders]
    ends = [s.start + s.wall for s in spans] + [end for _, end in stats.leaders]
    t0 = min(starts, default=0.0)
    length = max(max(ends, default=t0) - t0, 1e-3)
    scale = (WIDTH - LEFT - 20) / length
    n_lanes = max(lanes, default=-1) + 1
    lane_height = max(6, min(24, 480 // max(n_lanes + 1, 1)))
    height = TOP + (n_lanes + 1) * lane_height + 40

    def x(t: float) -> float:
        return LEFT + (t - t0) * scale

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           'font-family="sans-serif" font-size="11">']
    for tick in _ticks(length):
        svg.append(f'<line x1="{x(t0 + tick):.1f}" y1="{TOP - 6}" x2="{x(t0 + tick):.1f}" '
                   f'y2="{height - 30}" stroke="#e4e4e4"/>'
                   f'<text x="{x(t0 + tick):.1f}" y="{TOP - 10}" text-anchor="middle" '
                   f'fill="#555">{_seconds(tick)}</text>')
    svg.append(f'<text x="4" y="{TOP + lane_height * 0.75:.0f}" fill="#c00">failures</text>')
    every = max(1, math.ceil(12 / lane_height))  # label lanes no closer than the text
    for lane in range(0, n_lanes, every):
        y = TOP + (lane + 1) * lane_height
        svg.append(f'<text x="4" y="{y + lane_height * 0.75:.0f}" fill="#555">'
                   f'slot {lane + 1}</text>')
    for span, lane in zip(spans, lanes, strict=True):
        y = TOP + (lane + 1) * lane_height + 1
        tip = (f"{span.name} {span.job} attempt {span.attempt}: {_seconds(span.wall)} wall, "
               f"{_seconds(span.cpu_time)} cpu, {format_memory(span.rss * 1024)} peak")
        svg.append(f'<rect x="{x(span.start):.2f}" y="{y}" width="{max(span.wall * scale, 1):.2f}" '
                   f'height="{lane_height - 3}" fill="{colour.get(span.name, "#888")}" '
                   f'stroke="white" stroke-width="0.3"><title>{html.escape(tip)}</title></rect>')
    for failure in stats.failures:
        fx = x(float(failure["t"]))
        tip = f"{failure['name']} {failure['job']} attempt {failure['attempt']}: " \
              f"{failure['message']}"
        svg.append(f'<path d="M{fx - 5:.1f},{TOP + 2} L{fx + 5:.1f},{TOP + 2} L{fx:.1f},'
                   f'{TOP + lane_height - 2} Z" fill="#d62728">'
                   f'<title>{html.escape(tip)}</title></path>')
    for k, (start, _) in enumerate(stats.leaders):
        svg.append(f'<line x1="{x(start):.1f}" y1="{TOP}" x2="{x(start):.1f}" '
                   f'y2="{height - 30}" stroke="#333" stroke-dasharray="4,3"/>'
                   f'<text x="{x(start) + 3:.1f}" y="{height - 18}" fill="#333">leader '
                   f'{k + 1}</text>')
    svg.append("</svg>")
    return _page(stats, jobstore, colour, "\n".join(svg), len(stats.spans) > MAX_BARS)


def _page(stats: RunStats, jobstore: str, colour: dict[str, str], svg: str,
          cut: bool) -> str:
    f = stats.run_figures()
    legend = " ".join(f'<span class="key"><i style="background:{c}"></i>{html.escape(n)} '
                      f'({stats.targets[n].count:,})</span>' for n, c in colour.items())
    legend += ('<span class="key" style="color:#d62728">▼ failed attempt</span>'
               '<span class="key">┆ a leader started</span>')
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{t.count:,}</td><td>{_seconds(t.wall)}</td>"
        f"<td>{_seconds(t.wall / t.count if t.count else 0)}</td><td>{_seconds(t.wall_max)}</td>"
        f"<td>{_seconds(t.cpu)}</td><td>{format_memory(t.rss * 1024) if t.rss else '-'}</td>"
        f"<td>{t.attempts:,}</td><td>{t.failures:,}</td></tr>"
        for name, t in stats.targets.items())
    note = f"<p>Showing the first {MAX_BARS:,} jobs.</p>" if cut else ""
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>fntree timeline: {html.escape(jobstore)}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; color: #222; }}
h1 {{ font-size: 18px; margin: 0 0 4px 0; }}
.sub {{ color: #555; margin-bottom: 10px; }}
.key {{ margin-right: 14px; white-space: nowrap; }}
.key i {{ display: inline-block; width: 12px; height: 12px; margin-right: 4px;
          vertical-align: -1px; }}
table {{ border-collapse: collapse; margin-top: 12px; font-size: 13px; }}
td, th {{ padding: 2px 10px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
th {{ border-bottom: 1px solid #999; }}
</style></head><body>
<h1>fntree timeline</h1>
<div class="sub">{html.escape(jobstore)} · {f["jobs"]:,} jobs · {_seconds(f["wall"])} of leader
time ({f["leaders"]} leader(s)) · {f["jobs_per_second"]:,.0f} jobs/s · {f["cores"]:g} cores,
busy {100 * f["core_busy"]:.0f}% · {f["failures"]} failed attempt(s)</div>
<div>{legend}</div>
{note}{svg}
<table><tr><th>target</th><th>jobs</th><th>wall total</th><th>mean</th><th>max</th>
<th>cpu</th><th>peak memory</th><th>attempts</th><th>failed</th></tr>{rows}</table>
</body></html>
"""


def _seconds(value: float) -> str:
    if value == 0:
        return "0s"
    if value < 1:
        return f"{value * 1000:.0f}ms" if value >= 0.001 else f"{value * 1000:.2f}ms"
    if value < 120:
        return f"{value:.1f}s"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes}m{seconds:02d}s"


def write_timeline(path: Path, stats: RunStats, jobstore: str) -> None:
    path.write_text(render_timeline(stats, jobstore), encoding="utf-8")
