"""The event log's rollup: what the folded (removed) parts of the archive held, summed.

The archive of the event log (`events.<n>.log.gz`, fntree/runtime/eventlog.py)
is kept within a budget, `KEEP_BYTES` (or `FNTREE_EVENT_KEEP_BYTES`; 0 keeps
every part). Past it, the leader's writer thread folds the oldest parts into
`events.rollup.json` (`StorePaths.event_rollup()`, owner-only) and removes them.
The rollup holds, for the folded events only:

    format      ROLLUP_FORMAT
    last_part   the number of the last part folded (0: none yet); `legacy`, whether
                the archive of older fntree versions (`events.log.gz`) was folded
    link        that part's last 8 bytes, hex: the link part `last_part + 1` names
                in its header, so the chain of kept parts is checked from the rollup
    targets     per target: done, cached, attempts, failures, failed, wall, wall_max,
                cpu, rss (`TargetTotals`): the figures `fntree stats` prints are sums
                and maxima, so the rollup merges with the kept events exactly
    busy, cpu   the run's job wall time times each job's cores, and its cpu time
    leaders     [start, end, epoch] of each leader seen; `cores` of the last one
    issued      jobs issued and not yet heard back from at the fold: job ->
                [name, attempt, since, cores, state] (the live packets: few)
    queues      whether the last leader's batch system says when a packet starts
    reruns      [time, epoch, root] of each restart from the root
    declared    per target, the largest memory (bytes) and time (seconds) declared
    messages    how many `context().log` messages were folded (their text is gone)
    first, last the time of the first and last event folded

Order of durable writes: the rollup (temp file, fsync, rename, fsync of the
directory) THEN the removal of the parts it holds. A kill between the two
leaves parts already in the rollup: every reader skips parts numbered up to
`last_part` (and the old archive when `legacy`), `fntree check` notes them, and
the next leader's `tidy` removes them. A rollup that cannot be read is never
guessed at: readers say so (`load` appends a sentence to `cut`) and count only
the kept parts, and the writer stops folding (it would overwrite what it holds).
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import zlib
from collections.abc import Iterable
from typing import Any

from fntree.knobs import env_number
from fntree.runtime.durable import atomic_write
from fntree.runtime.paths import StorePaths

ROLLUP_FORMAT = 1
KEEP_BYTES = 128 << 20  # of archived parts kept: ~4.8 million jobs' detail, at ~28 bytes a job
_NOT_ISSUED = (None, 0, 0, 1.0)  # a job done whose issue the rollup has not seen: one core
_FIELDS = ("count", "cached", "attempts", "failures", "failed", "wall", "wall_max", "cpu", "rss")


def keep_bytes() -> int:
    """The budget of the archived parts: FNTREE_EVENT_KEEP_BYTES (0 keeps them all), else
    KEEP_BYTES (a value that is not a whole number of at least 0 is warned of, and ignored)."""
    return int(env_number("FNTREE_EVENT_KEEP_BYTES", KEEP_BYTES, whole=True, zero=True))


class TargetTotals:
    """One target's figures: sums and maxima, so that two of them merge exactly."""

    __slots__ = _FIELDS

    def __init__(self) -> None:
        self.count = self.attempts = self.failures = self.failed = self.rss = self.cached = 0
        self.wall = self.wall_max = self.cpu = 0.0

    def done(self, wall: float, cpu: float, rss: int, cached: bool) -> None:
        self.count += 1
        self.attempts += 1
        self.cached += cached
        self.wall += wall
        self.wall_max = max(self.wall_max, wall)
        self.cpu += cpu
        self.rss = max(self.rss, rss)

    def failure(self, permanent: bool) -> None:
        self.attempts += 1
        self.failures += 1
        self.failed += permanent

    def as_dict(self) -> dict[str, Any]:
        """As `fntree stats --json` prints it."""
        return {"count": self.count, "wall_total": round(self.wall, 6),
                "wall_mean": round(self.wall / self.count, 6) if self.count else 0.0,
                "wall_max": round(self.wall_max, 6), "cpu_total": round(self.cpu, 6),
                "rss_max_kib": self.rss, "attempts": self.attempts, "failures": self.failures,
                "cached": self.cached, "done": self.count, "failed": self.failed,
                "retried": self.failures - self.failed}

    def copy(self) -> TargetTotals:
        other = TargetTotals()
        for field in _FIELDS:
            setattr(other, field, getattr(self, field))
        return other

    def dump(self) -> list[float]:
        return [getattr(self, field) for field in _FIELDS]

    @classmethod
    def load(cls, values: Any) -> TargetTotals:
        if not isinstance(values, list) or len(values) != len(_FIELDS):
            raise ValueError("a target's totals are not a list of 9 numbers")
        totals = cls()
        for field, value in zip(_FIELDS, values, strict=True):
            if not isinstance(value, (int, float)) or isinstance(value, bool) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"a target's {field} is {value!r}")
            setattr(totals, field, value if field in ("wall", "wall_max", "cpu") else int(value))
        return totals


class Rollup:
    """The folded events, summed (the fields are the module docstring's)."""

    def __init__(self) -> None:
        self.last_part = 0
        self.legacy = False
        self.link = ""
        self.targets: dict[str, TargetTotals] = {}
        self.busy = self.cpu = 0.0
        self.leaders: list[list[float]] = []
        self.cores = 1.0
        self.issued: dict[str, list[Any]] = {}
        self.queues = False
        self.reruns: list[list[Any]] = []
        self.declared: dict[str, list[float | None]] = {}
        self.messages = 0
        self.first: float | None = None
        self.last: float | None = None

    @property
    def jobs(self) -> int:
        """Jobs done in the folded events."""
        return sum(t.count for t in self.targets.values())

    @property
    def failures(self) -> int:
        return sum(t.failures for t in self.targets.values())

    def target(self, name: str) -> TargetTotals:
        totals = self.targets.get(name)
        if totals is None:
            totals = self.targets[name] = TargetTotals()
        return totals

    def add(self, events: Iterable[dict[str, Any]]) -> None:
        """Fold `events` (as `read_events` yields them) in; a damaged one is skipped."""
        for event in events:
            try:
                self._add(event)
            except (KeyError, TypeError, ValueError):
                continue  # a line a flipped bit made that still parses

    def _add(self, event: dict[str, Any]) -> None:
        kind, t = event.get("ev"), float(event["t"])
        self.first = t if self.first is None else min(self.first, t)
        self.last = t if self.last is None else max(self.last, t)
        if kind == "leader":
            self.leaders.append([t, t, int(event.get("epoch") or 0)])
            self.cores = float(event.get("cores") or 1)
            self.queues = bool(event.get("queues"))
            self.issued.clear()
        elif self.leaders:
            self.leaders[-1][1] = max(self.leaders[-1][1], t)
        if kind == "issued":
            self.issue(event["job"], event["name"], event["attempt"], t,
                       float(event.get("cpu") or 1))
            self.declare(event["name"], event.get("memory"), event.get("time"))
        elif kind == "started":
            for job in event["jobs"]:
                if job in self.issued:
                    self.issued[job][4] = "running"
        elif kind == "done":
            self.done(event["name"], event["job"], float(event["wall"]), float(event["cpu"]),
                      int(event["rss"]), bool(event.get("cached")))
        elif kind == "failed":
            self.issued.pop(event["job"], None)
            self.target(event["name"]).failure(bool(event.get("permanent")))
        elif kind == "rerun":
            self.reruns.append([t, event.get("epoch"), event.get("root")])
        elif kind == "message":
            self.messages += 1

    def done(self, name: str, job: str, wall: float, cpu: float, rss: int,
             cached: bool) -> None:
        """Fold in job `job` of target `name` done (its time, first and last, already)."""
        cores = self.issued.pop(job, _NOT_ISSUED)[3]
        self.target(name).done(wall, cpu, rss, cached)
        self.busy += wall * cores
        self.cpu += cpu

    def issue(self, job: str, name: str, attempt: int, t: float, cores: float) -> None:
        """Fold in job `job` issued (its time, first and last, already)."""
        self.issued[job] = [name, attempt, t, cores, "queued" if self.queues else "running"]

    def declare(self, name: str, memory: Any, time: Any) -> None:
        most = self.declared.setdefault(name, [None, None])
        if memory:
            most[0] = max(most[0] or 0, int(memory))
        if time:
            most[1] = max(most[1] or 0.0, float(time))

    def dump(self) -> bytes:
        return json.dumps({
            "format": ROLLUP_FORMAT, "last_part": self.last_part, "legacy": self.legacy,
            "link": self.link, "targets": {n: t.dump() for n, t in self.targets.items()},
            "busy": self.busy, "cpu": self.cpu, "leaders": self.leaders, "cores": self.cores,
            "issued": self.issued, "queues": self.queues, "reruns": self.reruns,
            "declared": self.declared, "messages": self.messages, "first": self.first,
            "last": self.last}, separators=(",", ":")).encode() + b"\n"

    def sealed(self) -> bytes:
        """The file's bytes: the rollup's JSON line, then one with its CRC-32, so that a
        flipped bit is seen instead of read as another figure."""
        body = self.dump()
        return body + b'{"crc32":"%08x"}\n' % zlib.crc32(body)

    def write(self, paths: StorePaths) -> None:
        """Replace the store's rollup with this one, durably (before any part is removed)."""
        atomic_write(paths.event_rollup(), self.sealed())


def load(paths: StorePaths, cut: list[str] | None = None) -> Rollup | None:
    """The store's rollup; None when there is none, or when it cannot be read (then a
    sentence saying so, and what it means for the figures, is appended to `cut`)."""
    path = paths.event_rollup()
    try:
        return _parse(_read(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if cut is not None:
            cut.append(f"{path} cannot be read ({exc}), so the events of the parts folded "
                       "into it are not counted: the figures are those of the kept parts "
                       "only; restore it from a backup of the job store")
        return None


def folded_through(paths: StorePaths) -> tuple[int, bool, str]:
    """(last part folded, whether the old archive was, link) of the store's rollup, read
    quietly: (0, False, "") when there is none or it cannot be read."""
    rollup = load(paths)
    return (0, False, "") if rollup is None else (rollup.last_part, rollup.legacy, rollup.link)


def _read(path: os.PathLike[str]) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO is never waited on
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)


def _parse(data: bytes) -> Rollup:
    body, _, seal = data.partition(b"\n")
    try:
        crc = json.loads(seal)["crc32"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ValueError("its checksum line is missing or damaged: it was cut or edited") \
            from None
    body += b"\n"
    if crc != f"{zlib.crc32(body):08x}":
        raise ValueError("it does not match its checksum: damaged or edited")
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("it is not whole JSON: damaged or cut") from None
    if not isinstance(raw, dict) or raw.get("format") != ROLLUP_FORMAT:
        raise ValueError(f"it is not a rollup of format {ROLLUP_FORMAT}")
    rollup = Rollup()
    rollup.last_part = _whole(raw["last_part"], "last_part")
    rollup.legacy = bool(raw["legacy"])
    rollup.link = str(raw["link"])
    if rollup.last_part and len(rollup.link) != 16:
        raise ValueError(f"its link {rollup.link!r} is not 8 bytes in hex")
    rollup.targets = {str(n): TargetTotals.load(v) for n, v in dict(raw["targets"]).items()}
    rollup.busy, rollup.cpu = _number(raw["busy"], "busy"), _number(raw["cpu"], "cpu")
    rollup.leaders = [[float(a), float(b), int(c)] for a, b, c in raw["leaders"]]
    rollup.cores = _number(raw["cores"], "cores")
    rollup.issued = {str(job): list(v) for job, v in dict(raw["issued"]).items()}
    rollup.queues = bool(raw["queues"])
    rollup.reruns = [list(r) for r in raw["reruns"]]
    rollup.declared = {str(n): list(v) for n, v in dict(raw["declared"]).items()}
    rollup.messages = _whole(raw["messages"], "messages")
    rollup.first, rollup.last = raw["first"], raw["last"]
    return rollup


def _whole(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"its {name} is {value!r}, not a whole number")
    return value


def _number(value: Any, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"its {name} is {value!r}, not a number")
    return float(value)
