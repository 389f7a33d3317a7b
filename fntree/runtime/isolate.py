"""Running one job in a fresh process: what `@target(isolate=True)` asks for.

The worker forks: the child runs the job's body and sends back, through a pipe,
one pickled message, `(True, outcome, fns, used_local, used_global, messages)`
or `(False, message, ...)`, then leaves with `os._exit` (no cleanup of the
worker's that it inherited runs twice). The worker reads the pipe to its end,
reaps the child, and reports as if the job had run in place. Whatever the body
changed in the interpreter (module globals, imported modules, patches, threads)
dies with the child, so the next job of the worker never sees it.

The child inherits fds 1 and 2 already pointed at the job's scratch output, so
its prints and its traceback land in the job's log as usual. If the child dies
without a message (a signal, `os._exit`), the job fails with `IsolatedJobDied`.
Forking is cheap (copy-on-write) but not free: keep isolation for targets that
need it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
from collections.abc import Callable
from typing import Any

from fntree.errors import FntreeError
from fntree.runtime import retrying
from fntree.runtime.context import Context


class IsolatedJobDied(FntreeError, ChildProcessError):
    """The fresh process of an isolated job ended without reporting."""


class IsolatedFailure(FntreeError):
    """The body of an isolated job raised: `message` is the job's failure (traceback printed)."""

    def __init__(self, message: str, errno: int | None = None, text: str = "",
                 raised: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.error = OSError(errno, text) if errno is not None else None
        self.raised = raised  # the MRO names of what the body raised (runtime/retrying.py)


def run_isolated(body: Callable[[], Any], ctx: Context,
                 report: Callable[[BaseException], None]) -> Any:
    """`body()` run in a forked child; its return value (pickled back), or raises.

    `report(exc)` prints the traceback of an exception the body raised (in the child);
    the parent then raises `IsolatedFailure` with the same message.
    """
    _flush()
    read_end, write_end = os.pipe()
    worker = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        _child(body, ctx, report, write_end, worker)
    os.close(write_end)
    try:
        data = _read_all(read_end)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    if not data:
        raise IsolatedJobDied(f"the fresh process of isolated job {ctx.name} {_died(status)} "
                              "before it reported; its output is in the job's log")
    ok, value, used_local, used_global, messages = pickle.loads(data)
    ctx.used_local = ctx.used_local or used_local
    ctx.used_global = ctx.used_global or used_global
    ctx.messages.extend(messages)
    if not ok:
        raise IsolatedFailure(*value)
    return value


def _child(body: Callable[[], Any], ctx: Context, report: Callable[[BaseException], None],
           fd: int, worker: int) -> None:
    code = 0
    try:
        _die_with_worker(worker)
        try:
            message: tuple[Any, ...] = (True, body())
        except BaseException as exc:  # the job's failure, whatever it is, is reported
            with contextlib.suppress(OSError):  # its output cannot be written (a full disk)
                report(exc)
            error = (exc.errno, exc.strerror or "") if isinstance(exc, OSError) else (None, "")
            message = (False, (f"{type(exc).__name__}: {exc}", *error,
                               retrying.type_names(type(exc))))
        try:
            data = pickle.dumps((*message, ctx.used_local, ctx.used_global, ctx.messages),
                                pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            text = (f"{type(exc).__name__}: the outcome of isolated job {ctx.name} cannot be "
                    f"sent back ({exc})")
            data = pickle.dumps((False, (text, None, ""), ctx.used_local, ctx.used_global,
                                 ctx.messages))
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        code = 1
    finally:
        _flush()
        os._exit(code)


def _die_with_worker(worker: int) -> None:
    """Have the kernel kill this child when the worker that forked it dies (Linux)."""
    import ctypes  # here: only isolated jobs pay for it

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != worker:
        os._exit(1)


def _read_all(fd: int) -> bytes:
    parts = []
    while chunk := os.read(fd, 1 << 20):
        parts.append(chunk)
    return b"".join(parts)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


def _died(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {os.WTERMSIG(status)}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"
