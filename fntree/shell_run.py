"""Running one command of a shell target: environment, streams, exit status.

`run_command(command, env, capture)` starts the command as a child of this
process (a string through `bash -euo pipefail -c`, a list as argv), with:

- stdin: /dev/null in a worker, the terminal under `fntree debug-job`;
- stdout: this process's fd 1, which the worker points at the job's output
  (its log), or a pipe kept as the value with `capture` (at most that many
  bytes: more fails the job, since a value cut short would be silently wrong);
- stderr: a pipe copied to fd 2 as it arrives, its last `TAIL` bytes kept for
  the failure's message.

Reading stops once the command has exited and its pipes are drained, even if a
process it left in the background still holds them: that process is killed
with the rest of the job's tree when the job ends (the worker is a child
subreaper: fntree/batch/proctree.py). If this process is interrupted while the
command runs (Ctrl-C under debug-job, an error), the command's whole tree is
killed before the exception goes on.

`environment(ctx)` is what the command is given beyond this process's
environment: the granted cores as `FNTREE_CPUS` and the usual thread-count
variables, memory as `FNTREE_MEMORY_MB`, and `TMPDIR` as the job's local temp dir.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shlex
import signal
import subprocess
from collections.abc import Sequence

from fntree.batch import proctree
from fntree.errors import FntreeError
from fntree.runtime import context

BASH = ("bash", "-euo", "pipefail", "-c")
TAIL = 4096  # bytes of stderr kept for a failure's message
SHOWN = 2000  # characters of a command shown in a failure's message
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


class CommandFailed(FntreeError, RuntimeError):
    """A shell target's command exited with a non-zero status or was killed by a signal."""

    def __init__(self, message: str, returncode: int, command: str, stderr_tail: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.command = command
        self.stderr_tail = stderr_tail


def shown(command: str | Sequence[str]) -> str:
    """The command as run, for people: a string as is, argv joined with quotes."""
    text = command if isinstance(command, str) else shlex.join(command)
    return text if len(text) <= SHOWN else text[:SHOWN] + f" [... {len(text) - SHOWN} more]"


def environment(ctx: context.Context | None, fields: dict[str, int]) -> dict[str, str]:
    """The variables a command gets from its job: cores, memory and its temp dir."""
    env: dict[str, str] = {}
    if "cpu" in fields:
        env["FNTREE_CPUS"] = str(fields["cpu"])
        env.update(dict.fromkeys(THREAD_VARIABLES, str(fields["cpu"])))
    if "memory_mb" in fields:
        env["FNTREE_MEMORY_MB"] = str(fields["memory_mb"])
    if ctx is not None:
        env["TMPDIR"] = str(ctx.local_temp_dir)
    return env


def run_command(command: str | Sequence[str], env: dict[str, str], capture: int) -> str:
    """Run `command` to its end; its stdout if `capture`, else ""; CommandFailed if it fails."""
    argv = [*BASH, command] if isinstance(command, str) else [os.fspath(a) for a in command]
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL if context.in_worker() else None,
            stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE,
            env={**os.environ, **env})
    except OSError as exc:
        raise CommandFailed(f"the command could not be started ({exc}): {shown(command)}; "
                            "check that the tool is installed and on PATH where jobs run",
                            127, shown(command), "") from None
    try:
        out, tail, over = _pump(proc, capture)
    except BaseException:
        _kill_tree(proc)
        raise
    if proc.returncode != 0:
        raise CommandFailed(_failed(proc.returncode, command, tail), proc.returncode,
                            shown(command), tail)
    if over:
        raise CommandFailed(
            f"the command wrote more than {capture} bytes to stdout, the limit of capture=: "
            f"{shown(command)}; raise capture= (a number of bytes) or write to a declared "
            "output instead", 0, shown(command), tail)
    return out.decode(errors="replace")


def _pump(proc: subprocess.Popen[bytes], capture: int) -> tuple[bytes, str, bool]:
    """Copy stderr to fd 2 (keeping its tail) and collect stdout until the command ends."""
    out, tail, over = bytearray(), bytearray(), False
    with selectors.DefaultSelector() as selector:
        assert proc.stderr is not None
        selector.register(proc.stderr, selectors.EVENT_READ, "err")
        if capture:
            assert proc.stdout is not None
            selector.register(proc.stdout, selectors.EVENT_READ, "out")
        exited = False
        while selector.get_map():
            ready = selector.select(0 if exited else 0.5)
            if not ready and exited:
                break
            for key, _ in ready:
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                elif key.data == "err":
                    _write_all(2, data)
                    tail += data
                    del tail[:-TAIL]
                elif len(out) + len(data) > capture:
                    over = True
                else:
                    out += data
            exited = exited or proc.poll() is not None
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return bytes(out), tail.decode(errors="replace"), over


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the command and every process under it, and reap it."""
    for pid in [proc.pid, *proctree.descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.wait()


def _failed(returncode: int, command: str | Sequence[str], tail: str) -> str:
    if returncode < 0:
        status = f"was killed by signal {_signal_name(-returncode)}"
    elif returncode > 128 and isinstance(command, str):
        status = (f"exited with status {returncode} (a process in it was killed by "
                  f"signal {_signal_name(returncode - 128)})")
    else:
        status = f"exited with status {returncode}"
    lines = tail.rstrip().splitlines()[-20:]
    said = ("; its stderr ends:\n" + "\n".join(f"  {line}" for line in lines)) if lines \
        else "; it wrote nothing to stderr"
    return (f"the command {status}: {shown(command)}{said}\nIts whole output is in the "
            "job's log; `fntree debug-job` runs it again in the foreground")


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return str(number)

