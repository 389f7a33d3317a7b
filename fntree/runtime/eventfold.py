"""Folding the event log's oldest parts into its rollup, on the leader's writer thread.

`fold` is what keeps the archive within its budget (fntree/runtime/eventrollup.py
has the rollup's fields, and the order of writes): it sums the oldest parts into
the rollup, writes the rollup durably, and only then removes those parts. The
newest part is always kept. It reads each folded part once, in the writer
thread, letting the leader's thread have the GIL every `YIELD_EVERY` events.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fntree.runtime import crashpoints, eventrollup
from fntree.runtime.eventparts import kept_parts, part_events, part_number
from fntree.runtime.eventrollup import Rollup, folded_through
from fntree.runtime.paths import StorePaths

__all__ = ["fold"]

log = logging.getLogger("fntree")

YIELD_EVERY = 256  # events folded before the writer lets other threads run


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
            rollup.add(_yielding(part_events(part, cut)))
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


def _yielding(events: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """`events`, letting the leader's thread have the GIL every YIELD_EVERY of them."""
    for k, event in enumerate(events, 1):
        if not k % YIELD_EVERY:
            time.sleep(0)
        yield event


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
