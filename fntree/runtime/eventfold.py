"""Folding the event log's oldest parts into its rollup, on the leader's writer thread.

`fold` is what keeps the archive within its budget (fntree/runtime/eventrollup.py
has the rollup's fields, and the order of writes): it sums the oldest parts into
the rollup, writes the rollup durably, and only then removes those parts. The
newest part is always kept. It reads each folded part once, in the writer
thread, letting the leader's thread have the GIL every `YIELD_EVERY` events.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from fntree.runtime import crashpoints, eventrollup
from fntree.runtime.eventparts import archive_lines, kept_parts, parse_lines, part_number
from fntree.runtime.eventrollup import Rollup, folded_through
from fntree.runtime.paths import StorePaths

__all__ = ["fold"]

log = logging.getLogger("fntree")

YIELD_EVERY = 256  # lines folded before the writer lets other threads run
_ISSUED = b'"ev":"issued"'  # near the start of the writer's own `issued` lines
# A `done` line as EventLog._format writes it, with a name that needs no JSON escape.
_DONE = re.compile(rb'\{"t":([0-9.]+),"ev":"done","job":"([0-9a-f]{16})","name":"([^"\\]*)",'
                   rb'"attempt":[0-9]+,"start":[0-9.]+,"wall":([0-9.]+),"cpu":([0-9.]+),'
                   rb'"rss":([0-9]+),"chained":(?:true|false),"spawned":[0-9]+(,"cached":true)?\}')


def fold(paths: StorePaths, keep: int) -> bool:
    """Fold the oldest parts into the rollup until the kept ones fit in `keep` bytes (the
    newest is always kept); False, with a warning, when the rollup cannot be read or
    written (the parts then stay, and this leader folds no more).

    Writes the rollup durably, then removes the parts it now holds.
    """
    folding = _oldest(paths, keep)
    if not folding:
        return True
    cut: list[str] = []
    rollup = eventrollup.load(paths, cut)
    if cut:
        log.warning("%s; the event log's parts are kept whole from now on", cut[0])
        return False
    rollup = rollup or Rollup()
    try:
        for part in folding:
            fold_lines(rollup, archive_lines(part, cut))
            if part == paths.event_archive():
                rollup.legacy = True
            else:
                rollup.last_part, rollup.link = part_number(part), _tail(part)
        rollup.write(paths)
    except OSError as exc:
        log.warning("cannot fold the event log's oldest parts into %s (%s); they are kept "
                    "whole from now on", paths.event_rollup(), exc)
        return False
    crashpoints.point("events.fold")
    for part in folding:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
    for note in cut:
        log.warning("folding the event log: %s", note)
    return True


def _oldest(paths: StorePaths, keep: int) -> list[Path]:
    """The oldest archive files to fold for the rest to fit in `keep` bytes (never the
    newest part): the archive of older versions first, if the rollup does not hold it."""
    last, legacy, _ = folded_through(paths)
    archive = paths.event_archive()
    parts = [*(() if legacy or not archive.exists() else (archive,)), *kept_parts(paths, last)]
    sizes = [_size(p) for p in parts]
    total, count = sum(sizes), 0
    while total > keep and count < len(parts) - 1:
        total -= sizes[count]
        count += 1
    return parts[:count]


def fold_lines(rollup: Rollup, lines: Iterable[bytes]) -> None:
    """Fold a part's lines into `rollup`: the writer's own `done` lines by a pattern (about
    a quarter of the CPU of parsing them as JSON), every other line as `read_events`
    reads it. Lets the leader's thread have the GIL every YIELD_EVERY lines."""
    names: dict[bytes, str] = {}
    for k, line in enumerate(lines, 1):
        if not k % YIELD_EVERY:
            time.sleep(0)
        match = _DONE.fullmatch(line)
        if match is not None:
            t, job, name, wall, cpu, rss, cached = match.groups()
            _at(rollup, float(t))
            text = names.get(name)
            if text is None:
                text = names[name] = name.decode()
            rollup.done(text, job.decode(), float(wall), float(cpu), int(rss), bool(cached))
        elif line.find(_ISSUED, 0, 48) < 0 or not _packet(rollup, line):
            rollup.add(parse_lines((line,)))


def _packet(rollup: Rollup, line: bytes) -> bool:
    """Fold in an `issued` line whole (not one event per job); False if it is not one."""
    try:
        packet = json.loads(line)
        if packet["ev"] != "issued":
            return False
        t, jobs = float(packet["t"]), packet["jobs"]
        cores = float(packet.get("cpu") or 1)
        issued = [(str(job), str(name), int(attempt)) for job, name, attempt in jobs]
    except (ValueError, KeyError, TypeError):
        return False
    _at(rollup, t)
    for job, name, attempt in issued:
        rollup.issue(job, name, attempt, t, cores)
    for name in {name for _, name, _ in issued}:
        rollup.declare(name, packet.get("memory"), packet.get("time"))
    return True


def _at(rollup: Rollup, t: float) -> None:
    """An event at time `t` was folded: the span, and the current leader's end."""
    if rollup.first is None or t < rollup.first:
        rollup.first = t
    if rollup.last is None or t > rollup.last:
        rollup.last = t
    if rollup.leaders and rollup.leaders[-1][1] < t:
        rollup.leaders[-1][1] = t


def _size(path: os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _tail(part: os.PathLike[str]) -> str:
    """A part's last 8 bytes (its checksum and size), hex: the next part's link to it."""
    with open(part, "rb") as f:
        f.seek(-8, os.SEEK_END)
        return f.read(8).hex()
