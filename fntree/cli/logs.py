"""`fntree logs DIR [JOB]`: a job's whole kept log; without JOB, the failed jobs' logs.
With `-f`, a running job's output as it comes, or the run's messages (fntree.cli.follow).

A job's log holds every attempt's stdout, stderr, `context().log` messages and
traceback, each attempt under a `=== name id attempt N ===` header. Workers keep
the head and the tail of a very large output with the cut marked; this command
does the same for what it prints, above `--max-log-mb`.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

from rich.console import Console

from fntree.cli.follow import follow_job
from fntree.cli.messages import follow_messages
from fntree.debug import debug_command
from fntree.errors import FntreeError
from fntree.runtime.records import job_hex
from fntree.runtime.state import RunState
from fntree.runtime.store import JobStore

DEFAULT_MAX_LOG_MB = 4.0


class _IntermixedParser(argparse.ArgumentParser):
    """A parser whose positionals may follow its options: `fntree logs DIR -f JOB` as well as
    `fntree logs -f DIR JOB` (argparse alone gives DIR's chunk both positionals)."""

    _inner = False

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if self._inner:  # parse_known_intermixed_args calls this twice itself
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


def add_parser(sub: Any) -> None:
    default_class, sub._parser_class = sub._parser_class, _IntermixedParser
    try:
        parser = sub.add_parser("logs", help="a job's whole kept log, or the failed jobs' logs")
    finally:
        sub._parser_class = default_class
    parser.add_argument("jobstore", metavar="DIR")
    parser.add_argument("job", metavar="JOB", nargs="?",
                        help="a job id (or a unique prefix of one), or a target's name")
    parser.add_argument("-f", "--follow", action="store_true",
                        help="follow JOB's output while it runs, ending when it ends (as "
                        "`tail -f`); without JOB, every running job's messages while a "
                        "leader runs")
    add_max_log_mb(parser)
    parser.set_defaults(command=run)


def add_max_log_mb(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-log-mb", dest="max_log_mb", type=megabytes,
                        default=DEFAULT_MAX_LOG_MB,
                        help="print at most this many megabytes of each log: its head and "
                        f"tail, with the cut marked (default: {DEFAULT_MAX_LOG_MB:g})")


def megabytes(text: str) -> float:
    """A positive, finite number of megabytes from the command line (argparse's type=)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of megabytes; "
                                         "give one such as 4 or 0.5")
    return value


def read_log(path: Path, max_mb: float) -> str:
    """The text of a log, or its head and tail with the cut marked when over `max_mb`."""
    limit = max(int(max_mb * 1024 * 1024), 2)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size <= limit:
            return f.read().decode(errors="replace")
        half = limit // 2
        head = f.read(half)
        f.seek(size - half)
        tail = f.read(half)
    head = head[:head.rfind(b"\n") + 1] or head
    newline = tail.find(b"\n")
    tail = tail[newline + 1:] if 0 <= newline < len(tail) - 1 else tail
    cut = size - len(head) - len(tail)
    marker = (f"[... {cut:,} bytes cut by fntree logs: the log is {size:,} bytes, more than "
              f"--max-log-mb {max_mb:g}; raise it to see them ...]\n")
    return head.decode(errors="replace") + marker + tail.decode(errors="replace")


def failed_logs(store: JobStore, state: RunState) -> list[tuple[str, str, Path | None]]:
    """(name, job id, log path) of each failed job."""
    found = []
    for cid, (_, log_rel) in state.failed.items():
        job = state.chains[cid].job
        assert job is not None
        found.append((job.name, job_hex(job.job_id), store.paths.root / log_rel
                      if log_rel else None))
    return found


def find_logs(store: JobStore, state: RunState, text: str) -> list[tuple[str, str, Path]]:
    """(name, job id, log path) of the job `text` names: an id, a prefix of one, or a name."""
    key = text.lower()
    if key and all(ch in "0123456789abcdef" for ch in key):
        pattern = f"{key[:2]}/{key}*.log" if len(key) >= 2 else f"*/{key}*.log"
        paths = sorted(p for p in store.paths.logs.glob(pattern)
                       if p.parent != store.paths.live_dir)
        if len(paths) > 1:
            names = ", ".join(p.stem for p in paths[:5])
            raise FntreeError(f"{text!r} is the start of {len(paths)} jobs' ids ({names}"
                              f"{', ...' if len(paths) > 5 else ''}); give more of the id")
        if paths:
            return [(_name_of(state, paths[0].stem), paths[0].stem, paths[0])]
    named = [(n, j, p) for n, j, p in failed_logs(store, state) if n == text and p is not None]
    if named:
        return named
    raise FntreeError(f"no kept log for {text!r}: a job's log is kept when it printed or "
                      "failed, and a job is named by its id (see `fntree status DIR`) or, for "
                      "failed jobs, its target's name")


def _name_of(state: RunState, hex_id: str) -> str:
    chain = state.chain_of_job(int(hex_id, 16))
    return chain.job.name if chain is not None and chain.job is not None else "job"


def run(args: argparse.Namespace, console: Console) -> int:
    store = JobStore.open(args.jobstore)
    state, _, _ = store.recover(repair=False)
    out = Console(highlight=False, soft_wrap=True)
    if args.follow and not args.job:
        return follow_messages(store)
    if args.follow and follow_job(store, state, args.job) >= 0:
        return 0
    if args.job:
        for name, job, path in find_logs(store, state, args.job):
            out.rule(f"{name} {job} · {path}", style="dim")
            out.print(read_log(path, args.max_log_mb), markup=False, end="")
        return 0
    logs = failed_logs(store, state)
    if not logs:
        out.print(f"no failed jobs in {store.paths.root}; `fntree logs DIR JOB` shows any "
                  "job's kept log")
        return 0
    for name, job, kept in logs:
        out.rule(f"failed: {name} {job}" + (f" · {kept}" if kept else ""), style="red")
        if kept is not None and kept.exists():
            out.print(read_log(kept, args.max_log_mb), markup=False, end="")
        else:
            out.print("(it left no log)", style="dim")
        out.print(f"debug it: {debug_command(store.paths.root, job)}", markup=False)
    return 0
