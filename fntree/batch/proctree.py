"""No process outlives its job: how fntree finds and kills what a job started.

Three mechanisms, each for one way a job's processes could be left behind
(docs/processes.md says why these and not cgroups):

- **When a job ends**, its worker kills everything the job started. The worker
  is a *child subreaper* (`prctl(PR_SET_CHILD_SUBREAPER)`, Linux ≥ 3.4, no root
  needed), so a double fork or a `setsid` daemon whose parent exits is adopted
  by the worker rather than by init: every process a job started stays the
  worker's descendant. Then "the job left nothing behind" is "the worker has no
  child", one `waitpid(WNOHANG)` (`kill_descendants`); only when it has one is
  `/proc` read to find the whole tree, which is SIGKILLed and reaped.
- **When a worker dies** (SIGKILL from outside, the OOM killer, a time limit),
  its descendants are adopted by init. Every worker is started with two marks
  in its environment, `FNTREE_RUN=<store id>` and `FNTREE_WORKER=<token>`, and
  a job's processes inherit them (`/proc/<pid>/environ` is the environment a
  process was exec'd with: it survives fork, exec, setsid and a job's own
  `os.environ` changes). The leader kills every process carrying the dead
  worker's token (`sweep`).
- **When the leader dies**, its workers die by PDEATHSIG, and a guard process
  (`python -I .../fntree/batch/proctree.py STORE_ID ROOT`, `guard_command`, started
  per leader, holding
  the read end of a pipe whose write end only the leader holds) sees the pipe
  close and kills every process carrying the run's mark. A starting leader and
  `fntree kill` sweep the same mark, for a guard that was killed too.

A job that scrubs its children's environment (`env -i`, `subprocess.run(env={})`)
and also escapes its worker's subreaping by dying with its worker escapes the
sweep; processes whose environment holds `FNTREE_KEEP_ORPHANS=1` (the test of
the defence in depth, see fntree.batch.local) are spared on purpose.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
RUN_MARK = "FNTREE_RUN"
WORKER_MARK = "FNTREE_WORKER"
_SPARED = b"\0FNTREE_KEEP_ORPHANS=1\0"


def become_subreaper() -> bool:
    """Make this process adopt its orphaned descendants; False where the OS cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def has_children() -> bool:
    """Whether this process has a child, running or not yet reaped (one system call)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def kill_descendants(rounds: int = 2000, sleep: Callable[[float], None] = time.sleep) -> int:
    """SIGKILL and reap every descendant of this process; how many were killed.

    Repeats until none is left, for processes forked while the tree was read
    (a subreaper adopts the children of those it kills, so they show up again).
    """
    killed: set[int] = set()
    for _ in range(rounds):
        if not has_children():
            return len(killed)
        tree = descendants(os.getpid())
        for pid in tree:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed.update(tree)
        _reap_children()
        if has_children():
            sleep(0.001)
    return len(killed)


def _reap_children() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def descendants(root: int) -> list[int]:
    """The pids of `root`'s descendants, parents before children (read from /proc)."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        parent = _parent(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    found: list[int] = []
    stack = list(children.get(root, ()))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def _pids() -> Iterable[int]:
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc (not Linux): nothing can be found, nothing is killed
        return
    for entry in entries:
        if entry.isdigit():
            yield int(entry)


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    fields = stat[stat.rfind(b")") + 2:].split()
    return int(fields[1]) if len(fields) > 1 else None


def marked(name: str, value: str) -> list[int]:
    """Pids of this user's processes (not this one) exec'd with `name=value` in their environ."""
    needle = f"\0{name}={value}\0".encode()
    uid, me = os.getuid(), os.getpid()
    found = []
    for pid in _pids():
        if pid == me:
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = b"\0" + f.read()
        except OSError:
            continue
        if needle in environ and _SPARED not in environ:
            found.append(pid)
    return found


def sweep(name: str, value: str, rounds: int = 50,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """SIGKILL every process marked `name=value` until none is left; how many were killed.

    Processes forked while the marks were read are found by the next round; the
    sweep ends at once when it finds none, else after two rounds in a row that find none.
    """
    killed: set[int] = set()
    quiet = 0
    for _ in range(rounds):
        pids = [p for p in marked(name, value) if _state(p) != "Z"]
        if not pids:
            quiet += 1
            if quiet == 2 or not killed:
                break
            sleep(0.005)
            continue
        quiet = 0
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed.update(pids)
        sleep(0.005)
    return len(killed)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return "Z"
    return stat[stat.rfind(b")") + 2:][:1].decode()


def cpu_ticks(pid: int) -> tuple[str, int] | None:
    """A process's state letter and its main thread's user plus system clock ticks, or None
    if it is gone.

    The main thread's own (`/proc/PID/task/PID/stat`), not the process's: a worker's
    helper threads waiting for the interpreter lock wake every few milliseconds and
    use a little processor time, which would make a worker hung in C code look busy.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/task/{pid}/stat", "rb") as f:
            main = f.read()
    except OSError:
        return None
    fields = main[main.rfind(b")") + 2:].split()
    return stat[stat.rfind(b")") + 2:].split()[0].decode(), int(fields[11]) + int(fields[12])


def guard_command(python: str, store_id: str, store_root: str) -> list[str]:
    """The guard's command line: this file run as a script, in isolated mode (`-I`).

    It imports the standard library only, not the fntree package (`-m` would
    import all of fntree first, half a second and 15 MB for every leader, during
    which a leader's death found no guard to sweep its run), and neither the
    working directory nor PYTHON* variables can put other code in its place.
    """
    return [python, "-I", os.path.abspath(__file__), store_id, store_root]


def start_guard(python: str, store_id: str, store_root: Path, env: dict[str, str],
                cwd: str) -> tuple[subprocess.Popen[bytes], int]:
    """The guard that kills the run's processes when this leader dies (`guard`).

    It reads a pipe whose write end only this process holds (not inherited by
    anything it starts), so the pipe closes exactly when this process ends.
    Returns the guard and that write end, for `stop_guard`.
    """
    read, write = os.pipe()
    try:
        proc = subprocess.Popen(
            guard_command(python, store_id, str(store_root)),
            stdin=read, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            cwd=cwd, start_new_session=True)
    finally:
        os.close(read)
    return proc, write


def stop_guard(proc: subprocess.Popen[bytes], fd: int) -> None:
    """Close the guard's pipe (it then sweeps, finding nothing) and wait for it."""
    with contextlib.suppress(OSError):
        os.close(fd)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def guard(store_id: str, stdin: int = 0) -> None:
    """The guard's life: wait for the leader's end of the pipe to close, then sweep the run."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        try:
            if not os.read(stdin, 4096):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    sweep(RUN_MARK, store_id)


if __name__ == "__main__":
    guard(sys.argv[1])
