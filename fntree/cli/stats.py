"""`fntree stats DIR`: where a run's time went, per target, from its event log.

Per target, in the words of docs/states.md: jobs done (and of those, cached:
their value came from the cache across runs instead of running), total / mean /
max wall time ("wall", "mean", "max"), cpu time, the peak memory of the job's
own processes (fntree/runtime/peakmem.py), attempts ("tries"), and the failed
attempts: retried, or failed (no retries left); the table fits 80 columns. For the run: the
time its leaders ran, jobs per second, and how busy the cores were (job wall
time times the cores each job was given, and cpu time, over the cores the run
had for that long). `--json` prints the same as a stable object (format 1;
`done`, `retried` and `failed` were added beside `count` (= done) and
`failures` (= retried + failed), which stay; `folded` says how many jobs are
summed only in the rollup of the event log's folded parts); `--html FILE` writes
a timeline of the run (fntree/cli/timeline.py).

The figures are sums and maxima, so the rollup's totals
(fntree/runtime/eventrollup.py) and the kept events merge into the same figures
the whole log would give; only the per-job spans (the timeline) are the kept ones.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from rich.console import Console
from rich.table import Table

from fntree.resources import format_memory
from fntree.runtime.eventparts import read_events
from fntree.runtime.eventrollup import Rollup, TargetTotals
from fntree.runtime.eventrollup import load as load_rollup
from fntree.runtime.store import JobStore

FORMAT = 1


class Span(NamedTuple):
    """One completed job, as the timeline draws it."""

    start: float
    wall: float
    name: str
    job: str
    attempt: int
    cpu_time: float
    rss: int
    cores: float


class RunStats:
    """The figures of a run, gathered from its events in one pass."""

    def __init__(self, cores: float | None = None, rollup: Rollup | None = None) -> None:
        self.targets: dict[str, TargetTotals] = {}
        self.spans: list[Span] = []
        self.failures: list[dict[str, Any]] = []
        self.leaders: list[tuple[float, float]] = []  # (start, end) of each leader
        self.cores = cores
        self._cores_seen = 1.0
        self._issued_cores: dict[str, float] = {}
        self.folded = rollup or Rollup()  # the events of the parts folded away, summed
        if rollup is not None:
            self.targets = {name: t.copy() for name, t in rollup.targets.items()}
            self.leaders = [(start, end) for start, end, _ in rollup.leaders]
            self._cores_seen = rollup.cores
            self._issued_cores = {job: float(v[3]) for job, v in rollup.issued.items()}

    def _target(self, name: str) -> TargetTotals:
        target = self.targets.get(name)
        if target is None:
            target = self.targets[name] = TargetTotals()
        return target

    def add(self, events: Iterable[dict[str, Any]]) -> RunStats:
        for event in events:
            try:
                kind, t = event.get("ev"), float(event.get("t", 0.0))
            except (TypeError, ValueError):
                continue  # a damaged line that still parses; `fntree check` names the part
            if kind == "leader":
                self.leaders.append((t, t))
                self._cores_seen = float(event.get("cores") or 1)
            elif self.leaders:
                start, end = self.leaders[-1]
                self.leaders[-1] = (start, max(end, t))
            if kind == "issued":
                self._issued_cores[event["job"]] = float(event.get("cpu") or 1)
            elif kind == "done":
                self._done(event)
            elif kind == "failed":
                self._target(event["name"]).failure(bool(event.get("permanent")))
                self.failures.append(event)
        return self

    def _done(self, event: dict[str, Any]) -> None:
        wall, cpu, rss = float(event["wall"]), float(event["cpu"]), int(event["rss"])
        self._target(event["name"]).done(wall, cpu, rss, bool(event.get("cached")))
        cores = self._issued_cores.pop(event["job"], 1.0)
        self.spans.append(Span(float(event["start"]), wall, event["name"], event["job"],
                               int(event["attempt"]), cpu, rss, cores))

    # -- the run's figures -------------------------------------------------------------
    def run_figures(self) -> dict[str, Any]:
        wall = sum(end - start for start, end in self.leaders)
        jobs = sum(t.count for t in self.targets.values())
        cores = self.cores or self._cores_seen
        capacity = wall * cores
        busy = self.folded.busy + sum(s.wall * s.cores for s in self.spans)
        cpu = self.folded.cpu + sum(s.cpu_time for s in self.spans)
        failed = sum(t.failed for t in self.targets.values())
        failures = self.folded.failures + len(self.failures)
        return {"leaders": len(self.leaders), "wall": round(wall, 6), "jobs": jobs,
                "failures": failures, "failed": failed, "retried": failures - failed,
                "jobs_per_second": round(jobs / wall, 3) if wall > 0 else 0.0,
                "cores": cores,
                "core_busy": round(busy / capacity, 4) if capacity > 0 else 0.0,
                "cpu_busy": round(cpu / capacity, 4) if capacity > 0 else 0.0,
                "first": self.leaders[0][0] if self.leaders else None,
                "last": self.leaders[-1][1] if self.leaders else None}

    def as_dict(self, jobstore: str) -> dict[str, Any]:
        return {"format": FORMAT, "jobstore": jobstore, "run": self.run_figures(),
                "targets": {name: t.as_dict() for name, t in self.targets.items()},
                "folded": {"jobs": self.folded.jobs, "last_part": self.folded.last_part,
                           "messages": self.folded.messages}}

    def folded_note(self) -> str | None:
        """One line saying how many jobs are summed in the rollup only, if any are."""
        if not self.folded.last_part and not self.folded.legacy:
            return None
        return (f"{self.folded.jobs:,} earlier jobs (parts up to {self.folded.last_part}) are "
                "summarised only, in events.rollup.json: their totals are counted, timings "
                "per job are from the kept parts")


def gather(store: JobStore, cut: list[str] | None = None) -> RunStats:
    """The run's figures from its event log (the rollup of its folded parts, then the kept
    parts and the log), with the cores it was given."""
    options = store.config().get("options", {})
    cores = options.get("max_cpus")
    rollup = load_rollup(store.paths, cut)
    return RunStats(float(cores) if cores else None, rollup).add(read_events(store.paths, cut))


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("stats", help="where a run's time went, per target")
    parser.add_argument("jobstore", metavar="DIR")
    parser.add_argument("--json", action="store_true", help="print a machine-readable object")
    parser.add_argument("--html", metavar="FILE", help="write a timeline of the run to FILE")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace, console: Console) -> int:
    store = JobStore.open(args.jobstore)
    cut: list[str] = []
    stats = gather(store, cut)
    for note in cut:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"note: {note}",
                                                                    markup=False)
    root = str(store.paths.root)
    if args.html:
        from fntree.cli.timeline import write_timeline

        write_timeline(Path(args.html), stats, root)
        console.print(f"timeline written to {args.html}", markup=False)
    if args.json:
        print(json.dumps(stats.as_dict(root), indent=1))
        return 0
    out = Console(highlight=False, soft_wrap=True)
    if not stats.leaders:
        out.print(f"{root} has no events yet: no leader has run on it", markup=False)
        return 0
    figures = stats.run_figures()
    out.print(f"job store  {root}", markup=False)
    out.print(f"run        {figures['jobs']:,} jobs done in {figures['wall']:.2f}s of leader "
              f"time ({figures['leaders']} leader(s)), {figures['jobs_per_second']:,.0f} "
              f"jobs/s, {figures['retried']} retried, {figures['failed']} failed")
    out.print(f"cores      {figures['cores']:g}: busy {100 * figures['core_busy']:.0f}% "
              f"(job wall time), {100 * figures['cpu_busy']:.0f}% (cpu time)")
    folded = stats.folded_note()
    if folded:
        out.print(f"folded     {folded}", markup=False)
    table = Table(box=None, pad_edge=False, header_style="bold")
    cached = any(t.cached for t in stats.targets.values())  # a column only for runs with hits
    # Fits 80 columns: short headers (docs/states.md), figures never wrapped, a long name cut.
    table.add_column("target", overflow="ellipsis", no_wrap=True, max_width=24)
    for column in ("done", *(("cached",) if cached else ()), "wall", "mean", "max", "cpu",
                   "memory", "tries", "retried", "failed"):
        table.add_column(column, justify="right", no_wrap=True)
    for name, t in sorted(stats.targets.items(), key=lambda item: -item[1].wall):
        d = t.as_dict()
        table.add_row(name, f"{t.count:,}", *((f"{t.cached:,}",) if cached else ()),
                      _secs(t.wall), _secs(d["wall_mean"]), _secs(t.wall_max), _secs(t.cpu),
                      format_memory(t.rss * 1024) if t.rss else "-", f"{t.attempts:,}",
                      f"{t.failures - t.failed:,}", f"{t.failed:,}")
    out.print(table)
    return 0


def _secs(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.1f}ms"
    return f"{value:,.2f}s"
