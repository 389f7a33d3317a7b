"""`fntree kill DIR`: stop the leader running on a job store, and its jobs.

The leader's pid is in `leader.lock`, which it holds locked while it runs. It
gets SIGTERM, which it takes as Ctrl-C: it stops its workers, commits its
journal and releases the lock; this command waits for that. Then, and also
when no leader runs, it kills every process of this machine still carrying the
run's mark (fntree.batch.proctree): what jobs of a SIGKILLed leader started.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import socket
import time
from typing import Any

from rich.console import Console

from fntree.batch import proctree
from fntree.errors import FntreeError
from fntree.runtime.store import JobStore


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("kill", help="stop the leader running on a job store, and its jobs")
    parser.add_argument("jobstore", metavar="DIR")
    parser.add_argument("--timeout", type=seconds, default=60.0,
                        help="seconds to wait for the leader to stop (default: 60)")
    parser.set_defaults(command=run)


def seconds(text: str) -> float:
    """A positive, finite number of seconds from the command line (argparse's type=)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def leader_pid(holder: str) -> tuple[int, str]:
    """The pid and host in the leader's lock, written as `pid N on HOST`."""
    words = holder.split()
    if len(words) >= 4 and words[0] == "pid" and words[1].isdigit() and words[2] == "on":
        return int(words[1]), words[3]
    raise FntreeError(f"cannot read the leader's pid from its lock ({holder!r})")


def run(args: argparse.Namespace, console: Console) -> int:
    store = JobStore.open(args.jobstore)
    holder = store.leader_alive()
    if holder is None:
        console.print(f"no leader is running on {store.paths.root}{_sweep(store)}",
                      markup=False)
        return 0
    pid, host = leader_pid(holder)
    if host != socket.gethostname():
        raise FntreeError(f"the leader of {store.paths.root} runs on {host} (pid {pid}); run "
                          f"`fntree kill {store.paths.root}` there")
    with contextlib.suppress(ProcessLookupError):  # it is exiting already
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while store.leader_alive() is not None:
        if time.monotonic() > deadline:
            console.print(f"[red]fntree: the leader (pid {pid}) is still running after "
                          f"{args.timeout:g}s; `kill -9 {pid}` stops it at once (its workers "
                          "die with it, and the job store stays consistent)[/]")
            return 1
        time.sleep(0.05)
    console.print(f"stopped the leader (pid {pid}) of {store.paths.root}{_sweep(store)}; "
                  f"continue with `fntree restart {store.paths.root}`", markup=False)
    return 0


def _sweep(store: JobStore) -> str:
    """Kill the processes left carrying the run's mark; a clause saying so, if there were any."""
    killed = proctree.sweep(proctree.RUN_MARK, store.store_id)
    return f"; killed {killed} leftover process(es) of its jobs" if killed else ""
