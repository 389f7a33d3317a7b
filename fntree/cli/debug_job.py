"""`fntree debug-job DIR JOB [--pdb]`: run one job of a stopped run again, here.

The job runs in this process with its recorded arguments, environment, import
path and working directory, a fresh local temp dir and a copy of its chain's
global temp dir; nothing is written to the job store (fntree/debug.py).
"""

from __future__ import annotations

import argparse
import traceback
from typing import Any

from rich.console import Console
from rich.markup import escape

from fntree.debug import load, replay, user_frames
from fntree.runtime.store import JobStore


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("debug-job", help="run one job of a stopped run again, here, "
                            "recording nothing")
    parser.add_argument("jobstore", metavar="DIR")
    parser.add_argument("job", metavar="JOB",
                        help="a job id (or a unique prefix of one), or a target's name")
    parser.add_argument("--pdb", action="store_true",
                        help="enter the debugger at the exception the job raises")
    parser.add_argument("--attempt", type=attempt_number, default=None,
                        help="the attempt number the job sees (default: its last attempt)")
    parser.set_defaults(command=run)


def attempt_number(text: str) -> int:
    """An attempt number from the command line (argparse's type=): 1 or more."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an attempt number; give 1 or more")
    return int(text)


def run(args: argparse.Namespace, console: Console) -> int:
    store = JobStore.open(args.jobstore)
    job = load(store, args.job)
    console.print(f"[dim]fntree: replaying {escape(job.describe())} of "
                  f"{escape(str(store.paths.root))} in this "
                  "process; nothing is written to the job store[/]")
    replayed = replay(job, attempt=args.attempt, post_mortem=args.pdb)
    if replayed.error is not None:
        error = replayed.error
        console.print("".join(traceback.format_exception(
            type(error), error, user_frames(error.__traceback__) or error.__traceback__)),
            markup=False, end="")
        console.print(f"[bold red]fntree: {escape(replayed.describe())}[/]")
        return 1
    console.print(f"[green]fntree: {escape(replayed.describe())}[/]", markup=True)
    return 0
