"""`CleanState`: every job of a reused worker starts in the state the worker booted in.

A local worker runs many jobs, one after another, in one process. What a job
changes in that process would otherwise carry into the later, unrelated jobs of
the same worker, which would then fail for it. `CleanState` records, once, when
the worker boots:

- `os.environ`, exactly (the run's recorded environment the worker was started with);
- the working directory (the run's);
- the standard streams: the `sys.stdin`/`sys.stdout`/`sys.stderr` objects and
  fds 0, 1 and 2 (copies of them are kept: `capture_output` points 1 and 2 at a
  job's scratch output, `restore` points all three back, whatever the job did);
- the Python-level handlers of the standard (not real-time) signals, the signal
  mask, the wakeup fd, and no pending alarm (`ITIMER_REAL`);
- the umask.

`restore()` runs after every job, before anything else of the worker's, so the
next job starts as the first one did. It compares before it writes: the always
paid cost is seven system calls (three dup2, getcwd, umask, sigprocmask,
setitimer; with the two dup2 of `capture_output`, one more a job than the
runner made before just to point fds 1 and 2 at a job's output and back), a
dict comparison of the environment and a tuple of the signal handlers, about
25 us of CPU a job on a busy 2-core VM; a changed item is put back.

What it cannot undo: changes to the interpreter itself (imported modules, module
globals, monkey-patches, threads left running, the state of C libraries). A
target that makes such changes asks for a fresh process: `@target(isolate=True)`
(see `fntree.runtime.isolate`). Module-level code of a target's module runs in
the job that first imports it, so what it changes in the list above is undone
after that job: set such state in the target's body, or before `fntree.run`
(the environment is recorded then).
"""

from __future__ import annotations

import _signal  # the C functions: signal's wrappers convert to enums, 3 us a signal
import contextlib
import io
import os
import signal
import sys
import threading
from typing import Any, TextIO

_STREAMS = ("stdin", "stdout", "stderr")
_UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP}


class CleanState:
    """The process state recorded at a worker's boot, put back by `restore()`."""

    def __init__(self) -> None:
        self.cwd = os.getcwd()
        self.environ = dict(_environ_data())
        self.umask = os.umask(0o077)
        os.umask(self.umask)
        # Signal state belongs to the main thread; a runner elsewhere (a test) leaves it be.
        self.signals = threading.current_thread() is threading.main_thread()
        self.handlers: dict[int, Any] = {}
        for signum in signal.valid_signals() if self.signals else ():
            if signum in _UNCATCHABLE or signum >= signal.SIGRTMIN:  # real-time: unused
                continue
            handler = _signal.getsignal(signum)
            if handler is not None:  # None: set outside Python; it cannot be put back
                self.handlers[signum] = handler
        self._signums = tuple(self.handlers)
        self._handlers = tuple(self.handlers.values())
        self.mask = _signal.pthread_sigmask(signal.SIG_BLOCK, ())
        self.wakeup_fd = signal.set_wakeup_fd(-1) if self.signals else -1
        if self.signals:
            signal.set_wakeup_fd(self.wakeup_fd)
        self.streams: list[Any] = [getattr(sys, name) for name in _STREAMS]
        self.stream_kinds = [_kind(stream) for stream in self.streams]
        self.std_fds = (os.dup(0), os.dup(1), os.dup(2))
        self._closed = False  # a standard stream was found closed since the last restore

    def restore(self) -> list[str]:
        """Put back what the last job changed; the names of what was changed."""
        changed = []
        for fd, saved in enumerate(self.std_fds):
            with contextlib.suppress(OSError):  # the job closed fds it did not own
                os.dup2(saved, fd)
        if os.umask(self.umask) != self.umask:
            changed.append("umask")
        if self._restore_cwd():
            changed.append("working directory")
        if _environ_data() != self.environ:
            _restore_environ(self.environ)
            changed.append("environment")
        if self.signals and self._restore_signals():
            changed.append("signal handlers")
        if self._restore_streams():
            changed.append("standard streams")
        return changed

    def capture_output(self, fd: int) -> None:
        """Point fds 1 and 2 at `fd` (a job's scratch output) until `restore()`."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)

    def _restore_cwd(self) -> bool:
        try:
            if os.getcwd() == self.cwd:
                return False
        except OSError:  # the job removed its working directory
            pass
        with contextlib.suppress(OSError):  # the run's directory is gone: jobs will say so
            os.chdir(self.cwd)
        return True

    def _restore_signals(self) -> bool:
        changed = False
        if tuple(map(_signal.getsignal, self._signums)) != self._handlers:
            for signum, handler in self.handlers.items():
                if _signal.getsignal(signum) != handler:
                    signal.signal(signum, handler)
            changed = True
        if _signal.pthread_sigmask(signal.SIG_SETMASK, self.mask) != self.mask:
            changed = True
        if signal.setitimer(signal.ITIMER_REAL, 0)[0]:
            changed = True
        if signal.set_wakeup_fd(self.wakeup_fd) != self.wakeup_fd:
            changed = True
        return changed

    def release_output(self) -> OSError | None:
        """Flush what the job printed; the error if it could not be written (a full disk)."""
        unwritten = None
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except ValueError:  # closed by the job: `restore` makes a new one
                self._closed = True
            except OSError as exc:
                unwritten = exc
        return unwritten

    def _restore_streams(self) -> bool:
        streams = self.streams
        same = sys.stdin is streams[0] and sys.stdout is streams[1] and sys.stderr is streams[2]
        if same and not self._closed and not streams[0].closed:
            return False
        self._closed = False
        for i, name in enumerate(_STREAMS):
            if getattr(streams[i], "closed", False):
                streams[i] = _reopen(i, self.stream_kinds[i])
                if getattr(sys, f"__{name}__") is not None:
                    setattr(sys, f"__{name}__", streams[i])
        sys.stdin, sys.stdout, sys.stderr = streams
        return True

    def reopen_output(self) -> None:
        """New `sys.stdout`/`sys.stderr` objects: the old ones hold output that cannot be written.

        Called when flushing them failed (a full temp disk): what they still buffer
        belongs to the job that printed it and must not land in the next job's log.
        """
        for i in (1, 2):
            _ABANDONED.append(self.streams[i])  # kept: collecting them would flush them
            del _ABANDONED[:-4]
            self.streams[i] = _reopen(i, self.stream_kinds[i])
            setattr(sys, _STREAMS[i], self.streams[i])
            setattr(sys, f"__{_STREAMS[i]}__", self.streams[i])


_ABANDONED: list[Any] = []


def _kind(stream: Any) -> tuple[str, str, bool]:
    return (getattr(stream, "encoding", None) or "utf-8",
            getattr(stream, "errors", None) or "strict",
            bool(getattr(stream, "line_buffering", False)))


def _reopen(fd: int, kind: tuple[str, str, bool]) -> TextIO:
    """A text stream on standard fd `fd`, like the one the interpreter made at start."""
    encoding, errors, line_buffering = kind
    mode = "rb" if fd == 0 else "wb"
    return io.TextIOWrapper(open(fd, mode, closefd=False), encoding=encoding,
                            errors=errors, line_buffering=line_buffering)


def _environ_data() -> dict[bytes, bytes]:
    """The environment as `os.environ` holds it (bytes to bytes on POSIX), not copied."""
    data = getattr(os.environ, "_data", None)
    return data if isinstance(data, dict) else dict(os.environb)


def _restore_environ(saved: dict[bytes, bytes]) -> None:
    current = os.environb
    for key in [k for k in current if k not in saved]:
        del current[key]
    for key, value in saved.items():
        if current.get(key) != value:
            current[key] = value
