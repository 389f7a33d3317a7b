"""`fntree status DIR`: what a run has done, what is left, and why jobs failed.

It reads the job store without changing it: the state recovered from the
journal (what is done, running, ready, waiting, failed), whether a leader holds
the store right now, and the event log (which jobs a live leader has issued, and since when).
`--json` prints the same as one object whose keys are stable (`format` 1):

    format, jobstore, state ("completed" | "running" | "failed" | "stopped"),
    leader {alive, holder}, epoch, jobs {done, running, ready, waiting, failed},
    targets {name: {done, running, ready, waiting, failed}},
    cached {jobs, targets {name: count}},
    running [{name, job_id, attempt, since}],
    failed [{name, job_id, attempts, message, log, log_tail, debug_command}],
    restart_command (null when completed or a leader is running),
    env_changes [{time, set {name: value}, unset [name]}]  (restarts' --env, --env-unset)
    reruns [{time, epoch, root}]  (restarts with --rerun-changed; null where the event
        log no longer has them)

With `--logs`, each failed entry also has `log_text`, the job's whole kept log.
`cached` counts the done jobs whose value came from the cache across runs
instead of running (from the event log).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from fntree.cli.logs import add_max_log_mb, read_log
from fntree.debug import debug_command
from fntree.runtime.cache import ENV as CACHE_ENV
from fntree.runtime.eventlog import read_events
from fntree.runtime.records import job_hex
from fntree.runtime.state import WAITING, RunState
from fntree.runtime.store import JobStore

FORMAT = 1
TAIL_LINES = 15
KINDS = ("done", "running", "ready", "waiting", "failed")


def add_parser(sub: Any) -> None:
    status = sub.add_parser("status", help="what a run has done and what is left")
    status.add_argument("jobstore", metavar="DIR")
    status.add_argument("--fail-if-not-complete", action="store_true",
                        help="exit 1 unless the run completed")
    status.add_argument("--failed", action="store_true",
                        help="only the failed jobs, with their log tails")
    status.add_argument("--logs", action="store_true",
                        help="the failed jobs' whole kept logs instead of their tails")
    status.add_argument("--json", action="store_true",
                        help="print a machine-readable object (stable keys, format 1)")
    add_max_log_mb(status)
    status.set_defaults(command=run)


def describe(store: JobStore, *, logs: bool = False, max_log_mb: float = 4.0) -> dict[str, Any]:
    """The status of the run in `store`, as `--json` prints it."""
    state, _, _ = store.recover(repair=False)
    holder = store.leader_alive()
    root = store.paths.root
    issued = _issued_now(store) if holder else {}
    targets: dict[str, dict[str, int]] = {}
    running: list[dict[str, Any]] = []

    def count(name: str, kind: str) -> None:
        targets.setdefault(name, dict.fromkeys(KINDS, 0))[kind] += 1

    for name, n in state.done.items():
        targets.setdefault(name, dict.fromkeys(KINDS, 0))["done"] = n
    for chain in state.chains.values():
        job = chain.job
        if job is None:
            continue
        hex_id = job_hex(job.job_id)
        if chain.chain_id in state.failed:
            count(job.name, "failed")
        elif chain.chain_id in state.running or hex_id in issued:
            count(job.name, "running")
            attempt, since = issued.get(hex_id, (state.running.get(chain.chain_id), None))
            running.append({"name": job.name, "job_id": hex_id, "attempt": attempt,
                            "since": since})
        elif chain.status == WAITING:
            count(job.name, "waiting")
        else:
            count(job.name, "ready")
    running.sort(key=lambda r: r["since"] or float("inf"))
    jobs = {kind: sum(t[kind] for t in targets.values()) for kind in KINDS}
    cached = _cached(store)
    if state.finished:
        overall = "completed"
    elif holder:
        overall = "running"
    else:
        overall = "failed" if state.failed else "stopped"
    return {"format": FORMAT, "jobstore": str(root), "state": overall,
            "leader": {"alive": holder is not None, "holder": holder}, "epoch": state.epoch,
            "jobs": jobs, "targets": targets,
            "cached": {"jobs": sum(cached.values()), "targets": cached}, "running": running,
            "failed": _failed(store, state, logs, max_log_mb),
            "restart_command": None if overall in ("completed", "running")
            else f"fntree restart {root}",
            "env_changes": _env_changes(store), "reruns": _reruns(store, state.reruns)}


def _reruns(store: JobStore, count: int) -> list[dict[str, Any]]:
    """The times the run started again from its root (--rerun-changed): the journal
    counts them; the event log says when and with which leader (while it has them)."""
    if not count:
        return []
    found = [{"time": e["t"], "epoch": e["epoch"], "root": e["root"]}
             for e in read_events(store.paths) if e.get("ev") == "rerun"]
    found = found[-count:]
    return [{"time": None, "epoch": None, "root": None}] * (count - len(found)) + found


def _env_changes(store: JobStore) -> list[dict[str, Any]]:
    """The changes of the run's environment made at restarts, in order."""
    return [{"time": when, "set": {k: v for k, v in change.items() if v is not None},
             "unset": sorted(k for k, v in change.items() if v is None)}
            for when, change in store.config().get("env_changes", ())]


def _issued_now(store: JobStore) -> dict[str, tuple[int, float]]:
    """Jobs the live leader has issued and not heard back from: (attempt, since), by id.

    The journal may not hold them yet (an issue is made durable with the next
    completion); the event log has them within a second.
    """
    issued: dict[str, tuple[int, float]] = {}
    for event in read_events(store.paths):
        kind = event.get("ev")
        if kind == "leader":
            issued.clear()
        elif kind == "issued":
            issued[event["job"]] = (event["attempt"], event["t"])
        elif kind in ("done", "failed"):
            issued.pop(event["job"], None)
    return issued


def _cached(store: JobStore) -> dict[str, int]:
    """Jobs whose value came from the cache across runs, by target (from the event log).

    A run started with no cache is not read for them (its event log may be long).
    """
    config = store.config()
    if not config.get("options", {}).get("cache") and not config.get("env", {}).get(CACHE_ENV):
        return {}
    jobs = {event["job"]: event["name"] for event in read_events(store.paths)
            if event.get("ev") == "done" and event.get("cached")}
    counts: dict[str, int] = {}
    for name in jobs.values():
        counts[name] = counts.get(name, 0) + 1
    return counts


def _failed(store: JobStore, state: RunState, logs: bool,
            max_log_mb: float) -> list[dict[str, Any]]:
    found = []
    for cid, (message, log_rel) in state.failed.items():
        chain = state.chains[cid]
        assert chain.job is not None
        path = store.paths.root / log_rel if log_rel else None
        text = read_log(path, max_log_mb) if path is not None and path.exists() else ""
        hex_id = job_hex(chain.job.job_id)
        entry = {"name": chain.job.name, "job_id": hex_id, "attempts": chain.failures,
                 "message": message, "log": str(path) if path else None,
                 "log_tail": "\n".join(text.splitlines()[-TAIL_LINES:]),
                 "debug_command": debug_command(store.paths.root, hex_id)}
        if logs:
            entry["log_text"] = text
        found.append(entry)
    return found


def run(args: argparse.Namespace, console: Console) -> int:
    store = JobStore.open(args.jobstore)
    status = describe(store, logs=args.logs, max_log_mb=args.max_log_mb)
    incomplete = 1 if args.fail_if_not_complete and status["state"] != "completed" else 0
    if args.json:
        print(json.dumps(status, indent=1))
        return incomplete
    out = Console(highlight=False, soft_wrap=True)
    if not args.failed:
        _summary(out, status)
    _print_failed(out, status, args.logs, args.failed)
    if status["restart_command"] and not args.failed:
        out.print(f"Continue with: {status['restart_command']}", markup=False)
    return incomplete


def _summary(out: Console, status: dict[str, Any]) -> None:
    jobs, leader = status["jobs"], status["leader"]
    out.print(f"job store  {status['jobstore']}", markup=False)
    out.print(f"leader     {leader['holder'] if leader['alive'] else 'none running'}",
              markup=False)
    for change in status["env_changes"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(change["time"]))
        what = [f"{k}={v}" for k, v in sorted(change["set"].items())]
        what += [f"unset {k}" for k in change["unset"]]
        out.print(f"env        changed at a restart {when}: {', '.join(what)}", markup=False)
    for again in status["reruns"]:
        when = ("" if again["time"] is None else
                " " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(again["time"])))
        by = "" if again["epoch"] is None else f" by leader {again['epoch']}"
        out.print(f"rerun      restarted from its root with the current code (--rerun-changed)"
                  f"{when}{by}", markup=False)
    n = status["cached"]["jobs"]
    cached = f" ({n} from the cache)" if n else ""
    if status["state"] == "completed":
        out.print(f"state      [green]completed[/]: {jobs['done']} jobs done{cached}")
        return
    style = {"running": "bold", "failed": "bold red", "stopped": "yellow"}[status["state"]]
    running = "running" if leader["alive"] else "interrupted"
    out.print(f"state      [{style}]{status['state']}[/]")
    out.print(f"jobs       {jobs['done']} done{cached}, {jobs['running']} {running}, "
              f"{jobs['ready']} ready, {jobs['waiting']} waiting for children, "
              f"{jobs['failed']} failed")
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("target")
    for kind in KINDS:
        table.add_column(running if kind == "running" else kind, justify="right")
    for name, counts in status["targets"].items():
        table.add_row(name, *(_count(counts[k], k) for k in KINDS))
    out.print(table)
    if leader["alive"] and status["running"]:
        now = time.time()
        out.print("[bold]running now[/] (longest first)")
        for job in status["running"][:10]:
            since = f"{now - job['since']:.1f}s" if job["since"] else "?"
            out.print(f"  {job['name']} {job['job_id']} attempt {job['attempt']}, {since}",
                      markup=False)


def _count(n: int, kind: str) -> str:
    if kind == "failed" and n:
        return f"[bold red]{n}[/]"
    return str(n)


def _print_failed(out: Console, status: dict[str, Any], logs: bool, asked: bool) -> None:
    if not status["failed"]:
        if asked or status["state"] != "completed":
            out.print("no failed jobs")
        return
    for job in status["failed"]:
        out.rule(f"failed: {job['name']} {job['job_id']}, {job['attempts']} attempt(s)",
                 style="red")
        out.print(job["message"], markup=False)
        text = job.get("log_text") if logs else job["log_tail"]
        if text:
            out.print(text.rstrip("\n"), markup=False, style="dim")
        if job["log"]:
            out.print(f"log: {job['log']}", markup=False)
        out.print(f"debug it: {job['debug_command']}", markup=False)
