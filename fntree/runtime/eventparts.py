"""Reading the event log back: its archived parts, their sequence, and the log itself.

fntree/runtime/eventlog.py writes the log and archives it into parts; this module
is every reader's side of that layout (`fntree status`, `stats`, `timeline`,
`logs -f`, `check`), and the two names the writer needs (`part_name`,
`log_is_archived`).

Invariants a reader relies on, and what it does when one fails:

- A part is renamed into place whole, so it inflates to its end: one that does
  not was damaged after it was written, and `archive_lines` reads up to the
  damage and says so in `cut`. (The archive of older fntree versions,
  `events.log.gz`, one gzip member per leader, can be cut by a crash, and is
  read the same way.)
- Parts are numbered 1, 2, ... without gaps, and each names in its gzip header
  its number and the last 8 bytes of the part before it (`part_name`): a gap,
  or a part that does not follow, is a sentence in `chain_problems`.
- Parts numbered up to the rollup's `last_part` (fntree/runtime/eventrollup.py)
  are already summed in it: a leader killed between writing the rollup and
  removing them left them, and every reader skips them (`kept_parts`), as it
  skips the archive of older versions once the rollup holds it. The chain of
  kept parts starts after the rollup: the first one links to its `link`.
- The log is never the newest part's copy, except when a leader was killed
  between the part's rename and the log's removal: `read_events` then skips
  the log (`log_is_archived`), and the next leader removes it.
- Every file is opened with `open_regular`: a FIFO put in a file's place is
  refused, never waited on.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import stat
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from fntree.runtime.eventrollup import folded_through
from fntree.runtime.paths import EVENT_PART, StorePaths

ARCHIVE_CHUNK = 1 << 16  # compressed bytes inflated at a time when reading the archive


def open_regular(path: Path) -> BinaryIO:
    """`path` open for reading, if it is a regular file: a FIFO put in its place is never
    waited on (OSError, as for a directory; FileNotFoundError when it is missing)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def log_is_archived(paths: StorePaths) -> bool:
    """Whether the event log is byte for byte the newest part (a leader was killed between
    the part's rename and the log's removal). Inflates the part only if its size matches."""
    parts = paths.event_parts()
    if not parts:
        return False
    try:
        with open_regular(paths.event_log()) as log_file, open_regular(parts[-1]) as raw:
            size = os.fstat(log_file.fileno()).st_size
            raw.seek(-4, os.SEEK_END)  # a gzip member ends in its text's size mod 2**32
            if not size or int.from_bytes(raw.read(4), "little") != size % (1 << 32):
                return False
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw, mode="rb") as part:
                while chunk := part.read(ARCHIVE_CHUNK):
                    if log_file.read(len(chunk)) != chunk:
                        return False
                return not log_file.read(1)
    except (OSError, EOFError, zlib.error):
        return False


def read_events(paths: StorePaths, cut: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """The events of the run in `paths`, in order; `issued` lines become one event per job.

    A line that does not parse (torn by a killed leader) is skipped. An archive
    cut short (a leader killed while compressing into it) is read up to the cut,
    and a sentence saying so is appended to `cut`.
    """
    cut = [] if cut is None else cut
    cut.extend(chain_problems(paths))
    last, legacy, _ = folded_through(paths)
    for archive in ((() if legacy else (paths.event_archive(),)) + kept_parts(paths, last)):
        yield from part_events(archive, cut)
    if log_is_archived(paths):
        return  # its events were just read from its part
    try:
        log_file = open_regular(paths.event_log())
    except FileNotFoundError:
        return
    except OSError as exc:
        cut.append(f"{paths.event_log()} cannot be read ({exc.strerror}), so its events are "
                   "not shown; remove it (the next leader starts a new one)")
        return
    with log_file:
        yield from parse_lines(log_file)


def kept_parts(paths: StorePaths, last: int) -> tuple[Path, ...]:
    """The parts numbered after `last` (the rollup's last folded part), oldest first."""
    return tuple(p for p in paths.event_parts() if part_number(p) > last)


def part_number(part: Path) -> int:
    """The number in the name of a part (`events.<n>.log.gz`)."""
    return int(part.name.split(".")[1])


def part_events(path: Path, cut: list[str]) -> Iterator[dict[str, Any]]:
    """The events of one archive file (`issued` lines become one event per job)."""
    return parse_lines(archive_lines(path, cut))


def next_part(paths: StorePaths) -> tuple[int, str]:
    """The number of the next part to archive, and the name its header carries: after the
    newest part, or after the rollup's last folded part when no part is kept."""
    parts = paths.event_parts()
    newest = part_number(parts[-1]) if parts else 0
    last, _, link = folded_through(paths)
    if last > newest:
        return last + 1, f"events.{last + 1}.{link}.log"
    return newest + 1, part_name(newest + 1, parts[-1] if parts else None)


def part_name(number: int, previous: Path | None) -> str:
    """The name part `number` carries in its gzip header: its number and a link to the part
    before it (the last 8 bytes of that part, its checksum and size), so that a part
    missing, moved, or copied from another store is seen (`chain_problems`)."""
    link = "first"
    if previous is not None:
        with contextlib.suppress(OSError), open_regular(previous) as f:
            f.seek(-8, os.SEEK_END)
            link = f.read(8).hex()
    return f"events.{number}.{link}.log"


def chain_problems(paths: StorePaths) -> list[str]:
    """What is wrong with the sequence of the archive's parts, in sentences: a number
    missing, or a part whose header names another part before it (a part of another
    store, or of this one moved). Parts of older fntree versions name nothing, and pass."""
    found = []
    last, _, link = folded_through(paths)
    parts = list(kept_parts(paths, last))
    numbers = [part_number(p) for p in parts]
    missing = sorted(set(range(last + 1, max(numbers, default=0) + 1)) - set(numbers))
    if missing:
        found.append(f"the event log's part(s) {', '.join(map(str, missing[:10]))} are "
                     f"missing from {paths.root}, so the events they held are not counted; "
                     "restore them from a backup of the job store")
    for k, (number, part) in enumerate(zip(numbers, parts, strict=True)):
        name = _header_name(part)
        if name is None:
            continue
        previous = parts[k - 1] if k and numbers[k - 1] == number - 1 else None
        if number == 1 or previous is not None or (last and number == last + 1):
            expected = (f"events.{number}.{link}.log" if previous is None and last
                        else part_name(number, previous))
            if name != expected:
                found.append(f"{part.name} does not follow the part before it (its header "
                             f"names {name!r}, not {expected!r}): it was copied from another "
                             "job store or renamed, and its events may not be this run's; "
                             "remove it, or put back this store's own part")
    return found


def _header_name(path: Path) -> str | None:
    """The file name in `path`'s gzip header (RFC 1952 FNAME), or None."""
    try:
        with open_regular(path) as f:
            head = f.read(1024)
    except OSError:
        return None
    if len(head) < 10 or head[:3] != b"\x1f\x8b\x08" or not head[3] & 8:
        return None
    at = 10
    if head[3] & 4:  # FEXTRA: its length, then its bytes
        at += 2 + int.from_bytes(head[10:12], "little")
    end = head.find(b"\0", at)
    return head[at:end].decode("latin-1") if end > 0 else None


def archive_lines(path: Path, cut: list[str]) -> Iterator[bytes]:
    """The lines of every gzip member of `path`, up to the first one that is cut or damaged."""
    legacy = not EVENT_PART.fullmatch(path.name)
    why = ("a leader stopped while writing it" if legacy else "parts are renamed into place "
           "whole, so it was damaged or cut after it was written: a disk error, an edit, a "
           "copy cut short; restore it from a backup of the job store")
    try:
        with open_regular(path) as f:
            data = f.read()
    except FileNotFoundError:
        return
    except OSError as exc:
        cut.append(f"{path} cannot be read ({exc.strerror or exc}), so its events are not "
                   "shown")
        return
    pos = 0
    while pos < len(data):
        inflater = zlib.decompressobj(wbits=31)
        tail, fed = b"", pos
        while fed < len(data) and not inflater.eof:
            chunk = data[fed:fed + ARCHIVE_CHUNK]
            text, inflater = _inflate(inflater, chunk)
            lines = (tail + text).split(b"\n")
            tail = lines.pop()
            yield from lines
            if inflater is None:
                cut.append(f"{path} is cut short or damaged: from byte {pos} on it does not "
                           f"decompress to the end ({why}), so the events after the damage "
                           "are not shown")
                return
            fed += len(chunk)
        if not inflater.eof:
            cut.append(f"{path} is cut short: from byte {pos} on it ends before its end "
                       f"marker ({why}), so the events after the cut are not shown")
            return
        yield tail
        pos = fed - len(inflater.unused_data)


def _inflate(inflater: Any, chunk: bytes) -> tuple[bytes, Any]:
    """(text, inflater) from `chunk`; at damage, the text before it and None."""
    saved = inflater.copy()
    try:
        return inflater.decompress(chunk), inflater
    except zlib.error:
        pass
    text = b""
    for start in range(0, len(chunk), 64):
        try:
            text += saved.decompress(chunk[start:start + 64])
        except zlib.error:
            break
    return text, None


def parse_lines(lines: Iterable[str | bytes]) -> Iterator[dict[str, Any]]:
    """The events of event-log lines (`issued` lines become one event per job); a line
    that does not parse is skipped."""
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        if event.get("ev") == "issued":
            for job, name, attempt in event.get("jobs", ()):
                yield {"t": event["t"], "ev": "issued", "job": job, "name": name,
                       "attempt": attempt, "packet": event.get("packet"),
                       "cpu": event.get("cpu", 1), "memory": event.get("memory"),
                       "time": event.get("time")}
        else:
            yield event
