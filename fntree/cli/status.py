"""`fntree status DIR`: what a run has done, what is left, and why jobs failed."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from fntree.runtime.records import job_hex
from fntree.runtime.state import WAITING
from fntree.runtime.store import JobStore


def add_parser(sub: Any) -> None:
    status = sub.add_parser("status", help="what a run has done and what is left")
    status.add_argument("jobstore", metavar="DIR")
    status.add_argument("--fail-if-not-complete", action="store_true",
                        help="exit 1 unless the run completed")
    status.set_defaults(command=run)


def run(args: argparse.Namespace, console: Console) -> int:
    store = JobStore.open(args.jobstore)
    state, _, _ = store.recover(repair=False)
    leader = store.leader_alive()
    done = sum(state.done.values())
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"job store  {store.paths.root}")
    out.print(f"leader     {leader or 'none running'}")
    if state.finished:
        out.print(f"state      [green]completed[/]: {done} jobs done")
        return 0
    running = len(state.running)
    waiting = sum(1 for c in state.chains.values() if c.status == WAITING)
    out.print(f"jobs       {done} done, {running} {'running' if leader else 'interrupted'}, "
              f"{state.ready_count()} ready, {waiting} waiting for children, "
              f"{len(state.failed)} failed")
    for cid, (message, log_rel) in state.failed.items():
        chain = state.chains[cid]
        assert chain.job is not None
        out.rule(f"failed: {chain.job.name} {job_hex(chain.job.job_id)}, "
                 f"{chain.failures} attempt(s)")
        out.print(message, markup=False)
        if log_rel:
            path = store.paths.root / log_rel
            tail = path.read_text(errors="replace").splitlines()[-15:] if path.exists() else []
            out.print("\n".join(tail), markup=False, style="dim")
    if not leader:
        out.print(f"Continue with: fntree restart {store.paths.root}")
    return 1 if args.fail_if_not_complete else 0
