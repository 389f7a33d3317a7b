"""Targets of the clean-job and diagnostics tests; importable by workers (tests/ is on the path)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import fntree

LEAKS = ("chdir", "environ", "signal", "stdout", "umask", "stdin")
COUNTER = {"n": 0}


@fntree.target
def leak(kind: str) -> int:
    """Change one piece of process state and leave it changed."""
    if kind == "chdir":
        os.chdir("/")
    elif kind == "environ":
        os.environ["FNTREE_TEST_LEAK"] = "1"
        os.environ.pop("FNTREE_TEST_KEEP", None)
    elif kind == "signal":
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif kind == "stdout":
        sys.stdout.close()
    elif kind == "umask":
        os.umask(0o777)
    elif kind == "stdin":
        os.close(0)
    return os.getpid()


@fntree.target
def inspect_state(_: Any = None) -> dict[str, Any]:
    """The process state a job starts with."""
    print("innocent output")
    return {"cwd": os.getcwd(), "leak": os.environ.get("FNTREE_TEST_LEAK"),
            "keep": os.environ.get("FNTREE_TEST_KEEP"),
            "usr1": signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL,
            "term": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
            "umask": _umask(), "stdin": os.fstat(0).st_ino == os.stat(os.devnull).st_ino,
            "pid": os.getpid(), "leaker": _}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@fntree.target
def leak_then_inspect(kind: str) -> fntree.Spawn:
    """`leak(kind)`, then, in the same (only) worker, `inspect_state`."""
    first = leak(kind)
    return fntree.children(first).then(inspect_state(first))


@fntree.target(isolate=True)
def bump_isolated() -> tuple[int, int]:
    """Mutate a module global in a fresh process."""
    COUNTER["n"] += 1
    return COUNTER["n"], os.getpid()


@fntree.target
def read_counter(previous: Any = None) -> tuple[int, int]:
    return COUNTER["n"], os.getpid()


@fntree.target
def isolated_then_read() -> fntree.Spawn:
    first = bump_isolated()
    return fntree.children(first).then(read_counter(first))


@fntree.target(isolate=True)
def isolated_fails() -> None:
    print("isolated says hi")
    raise ValueError("isolated boom")


@fntree.target(isolate=True)
def isolated_dies() -> None:
    print("about to die", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


@fntree.target
def predecessor(marker: str) -> fntree.Call:
    """Completes fine; its tail-called follow-on kills the worker."""
    with open(marker, "a") as f:
        f.write("predecessor\n")
    return killer(marker)


@fntree.target
def killer(marker: str) -> None:
    with open(marker, "a") as f:
        f.write("killer\n")
    print("killer's last words", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


@fntree.target
def chatty(n: int) -> int:
    """Prints more than a tiny temp disk holds."""
    print("x" * 4096 * n, flush=True)
    return n


@fntree.target
def nested_run() -> Any:
    """Calls fntree.run inside a job, which is refused."""
    return fntree.run(read_counter())


@fntree.target
def halfway(flag: str) -> str:
    """Prints, then waits (the first time) to be stopped with its leader."""
    print("halfway there", flush=True)
    if not os.path.exists(flag):
        with open(flag, "w") as f:
            f.write(str(os.getpid()))
        import time

        time.sleep(120)
    return "finished"


@fntree.target
def nested_restart(store: str) -> Any:
    """Calls fntree.restart inside a job, which is refused."""
    return fntree.restart(store)
