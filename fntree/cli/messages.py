"""`fntree logs -f DIR`: the run's messages, the last `RECENT` first, then each as it comes.

The leader appends events to `events.log` every half second, and rotates it
(fntree/runtime/eventlog.py): past its bound, and when the leader finishes, it
closes the log, copies it into the next part `events.<n>.log.gz`, and removes
it; its next write makes a new `events.log`. Following by name and offset
would, at each rotation, lose what was written since the last read and read
the new log from the old one's offset, so the follower holds the log open:

- it reads the open log to its end; when the name no longer leads to that file
  (`_gone`), the file is complete (its writer closed it before copying it), so
  it reads the rest and closes it: that file is part `expected + 1`;
- before opening the next log it lists the parts: a part past `expected` is a
  log it never opened (written and rotated between two of its looks), and its
  messages are read from the part. It opens the log between two listings that
  agree, so the file it opens becomes the next part, never one it counted;
- a part folded into the rollup (fntree/runtime/eventrollup.py) is gone with its
  messages: following from the start shows the newest kept parts, and a
  follower that fell that far behind says which part it could not read.

So each message is printed once and in order, across any number of rotations.
It ends when no leader holds the store (`JobStore.leader_alive`, looked at every
`LOOK_EVERY` seconds while nothing comes).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from typing import BinaryIO

from fntree.errors import JobStoreError
from fntree.runtime.eventparts import archive_lines, open_regular
from fntree.runtime.paths import EVENT_PART
from fntree.runtime.store import JobStore

POLL = 0.25        # seconds between two reads of a log that did not grow
LOOK_EVERY = 2.0   # seconds between two looks for a leader while nothing comes
RECENT = 10        # messages printed before following
RECENT_BYTES = 16 << 20  # of parts read, at most, to find them

Write = Callable[[bytes], None]


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def follow_messages(store: JobStore, write: Write = _write,
                    clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> int:
    """The run's last messages, then each as the leader records it, while a leader runs."""
    follower = _Follower(store, write)
    follower.recent()
    if store.leader_alive() is None:
        follower.drain()
        write(f"[fntree logs: no leader is running {store.paths.root}; nothing more to "
              "follow]\n".encode())
        return 0
    looked = clock()
    while True:
        if follower.step():
            continue
        if clock() - looked > LOOK_EVERY:
            looked = clock()
            if store.leader_alive() is None:
                follower.drain()
                return 0
        sleep(POLL)


class _Follower:
    """The event log open for reading, and the number of the last part already shown."""

    def __init__(self, store: JobStore, write: Write) -> None:
        self.paths = store.paths
        self.write = write
        self.file: BinaryIO | None = None
        self.partial = b""
        self.expected = 0
        self.started = False  # the parts before the start are history, not news

    def recent(self) -> None:
        """Open the log, and print the last RECENT messages of the log and the newest parts
        (going back at most RECENT_BYTES of parts: a run may have logged no message)."""
        self._open()
        lines = self.file.read().splitlines(keepends=True) if self.file is not None else []
        if lines and not lines[-1].endswith(b"\n"):
            self.partial = lines.pop()
        shown = [m for m in map(_message, lines) if m]
        number, budget = self.expected, RECENT_BYTES
        while len(shown) < RECENT and number > 0 and budget > 0:
            part = self.paths.event_part(number)
            try:
                budget -= part.stat().st_size
            except FileNotFoundError:
                break  # folded into the rollup, and so are the parts before it
            except OSError:
                pass
            shown = [m for m in map(_message, archive_lines(part, [])) if m] + shown
            number -= 1
        for message in shown[-RECENT:]:
            self.write(message)

    def step(self) -> bool:
        """Print what came since the last step; whether anything did (or the log rotated)."""
        if self.file is not None:
            data = self.file.read()
            if data:
                self._lines(data)
                return True
            if not _gone(self.paths.event_log(), self.file):
                return False
            self._close()
            self.expected += 1  # the closed log is now that part
        before = self.expected
        self._open()
        return self.file is not None or self.expected != before

    def drain(self) -> None:
        """Print what is left: the leader has stopped, so nothing more comes."""
        with contextlib.suppress(OSError):
            while self.step():
                pass

    def _lines(self, data: bytes) -> None:
        *complete, self.partial = (self.partial + data).split(b"\n")
        for line in complete:
            message = _message(line)
            if message:
                self.write(message)

    def _close(self) -> None:
        assert self.file is not None
        rest = self.file.read()
        if rest:
            self._lines(rest)
        self.file.close()
        self.file, self.partial = None, b""  # a line left open was torn by a killed leader

    def _open(self) -> None:
        """Open the log (None if there is none now), after the parts past `expected`."""
        while True:
            newest = _newest_part(self.paths.root)
            for number in range(self.expected + 1, newest + 1):
                if self.started:
                    self._part(number)
            self.expected = max(self.expected, newest)
            try:
                f = open_regular(self.paths.event_log())
            except FileNotFoundError:
                f = None
            except OSError as exc:
                raise JobStoreError(f"{self.paths.event_log()} cannot be followed "
                                    f"({exc.strerror}): the leader writes it as a regular "
                                    "file, so something else was put in its place; remove "
                                    "it (the next leader starts a new one)") from None
            if _newest_part(self.paths.root) == newest:
                self.file, self.started = f, True
                return
            if f is not None:
                f.close()  # a rotation came between: the file may be a part counted

    def _part(self, number: int) -> None:
        part = self.paths.event_part(number)
        if not os.path.lexists(part):
            self.write(f"[fntree] part {number} of the event log was folded into "
                       f"{self.paths.event_rollup().name} before it was read: its messages "
                       "are not shown\n".encode())
            return
        for line in archive_lines(part, []):
            message = _message(line)
            if message:
                self.write(message)


def _newest_part(root: os.PathLike[str]) -> int:
    numbers = [0]
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(root):
            match = EVENT_PART.fullmatch(entry)
            if match:
                numbers.append(int(match[1]))
    return max(numbers)


def _gone(path: os.PathLike[str], f: BinaryIO) -> bool:
    """Whether `path` no longer leads to the file open as `f` (it was rotated)."""
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return True


def _message(line: bytes) -> bytes:
    """`name job: text` for an event log line that is a message, else b""."""
    if b'"ev": "message"' not in line:
        return b""
    try:
        event = json.loads(line)
    except ValueError:
        return b""
    if not isinstance(event, dict):
        return b""
    return f"{event.get('name')} {str(event.get('job'))[:8]}: {event.get('text')}\n".encode()

