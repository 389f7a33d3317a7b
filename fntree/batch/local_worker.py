"""The worker's side of the local batch system, and the frames both sides speak.

Messages are frames, `u32 length | pickle`. The worker (`serve`) reads
`("run", tasks, fns)` (each task a plain tuple of a `Task`'s fields) or
`("stop",)` from its pipe and answers with
`("results", [Result, ...], last)` and, while a task runs, heartbeats
`("alive", job_id, attempt, elapsed, declared time)` from a thread, every
`FNTREE_HEARTBEAT` seconds (set by the leader, see fntree.batch.watch), and
`("messages", [(name, job id, text), ...])` as a running job logs them (the
runner's live-output thread, fntree.runtime.live); one lock keeps the frames of
the three threads whole.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from fntree.batch.base import Result, Task
from fntree.batch.threads import start_daemon
from fntree.knobs import env_number

_LEN = struct.Struct("<I")


def frame(message: Any) -> bytes:
    data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


def send_frame(fd: int, message: Any) -> None:
    view = memoryview(frame(message))
    while view:
        view = view[os.write(fd, view):]


def read_frames(buffer: bytearray) -> list[Any]:
    messages = []
    offset = 0
    while len(buffer) - offset >= _LEN.size:
        (length,) = _LEN.unpack_from(buffer, offset)
        end = offset + _LEN.size + length
        if end > len(buffer):
            break
        messages.append(pickle.loads(bytes(buffer[offset + _LEN.size:end])))
        offset = end
    del buffer[:offset]
    return messages


def _read_exact(fd: int, n: int) -> bytes | None:
    parts = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _die_with_parent(parent: int) -> None:
    """Make the kernel SIGKILL this worker when its leader dies.

    `FNTREE_KEEP_ORPHANS=1` turns this off, for the test that shows an orphaned
    worker cannot report into a later leader's run.
    """
    if os.environ.get("FNTREE_KEEP_ORPHANS") == "1":
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


FLUSH_EVERY = 0.02  # seconds: how long finished results may wait to share a message


class Runner(Protocol):
    running: tuple[int, int, float, float | None] | None  # job id, attempt, start, time

    def learn(self, fns: dict[bytes, bytes]) -> None: ...

    def send_messages(self, send: Callable[[list[tuple[str, str, str]]], None]) -> None: ...

    def run_packet(self, tasks: list[Task]) -> Iterator[list[Result]]: ...


def serve(runner: Runner, rfd: int, wfd: int, parent: int) -> None:
    """The worker's side: take packets from `rfd`, send results to `wfd`, until EOF.

    A heartbeat thread speaks while a task runs (see fntree.batch.watch); one lock
    keeps its frames and the results' whole.
    """
    _die_with_parent(parent)
    for fd in (rfd, wfd):  # a job's processes must not hold the worker's pipes open
        os.set_inheritable(fd, False)
    lock = threading.Lock()

    def send_messages(messages: list[tuple[str, str, str]]) -> None:
        with lock:
            send_frame(wfd, ("messages", messages))

    runner.send_messages(send_messages)
    every = env_number("FNTREE_HEARTBEAT", 1.0)
    start_daemon(_heartbeat, "fntree-heartbeat", (runner, wfd, lock, every))
    while True:
        header = _read_exact(rfd, _LEN.size)
        if header is None:
            return
        body = _read_exact(rfd, _LEN.unpack(header)[0])
        if body is None:
            return
        message = pickle.loads(body)
        if message[0] == "stop":
            return
        _, fields, fns = message
        tasks = [Task._make(t) for t in fields]  # (sent as plain tuples: fntree.batch.local)
        runner.learn(fns)
        pending: list[Result] = []
        flushed = time.monotonic()
        for results in runner.run_packet(tasks):
            pending.extend(results)
            now = time.monotonic()
            if now - flushed > FLUSH_EVERY:
                with lock:
                    send_frame(wfd, ("results", pending, False))
                pending, flushed = [], now
        with lock:
            send_frame(wfd, ("results", pending, True))


def _heartbeat(runner: Runner, wfd: int, lock: threading.Lock, every: float) -> None:
    """Every `every` seconds while a task runs: which, and for how long it has run."""
    while True:
        time.sleep(every)
        running = runner.running
        if running is None:
            continue
        job_id, attempt, started, declared = running
        try:
            with lock:
                send_frame(wfd, ("alive", job_id, attempt, time.monotonic() - started, declared))
        except OSError:
            return
