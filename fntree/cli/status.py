"""`fntree status DIR`: what a run has done, what is left, and why jobs failed.

It reads the job store without changing it: the state recovered from the
journal, counted in the job states of docs/states.md (waiting, ready, queued,
running, done, cached, failed), whether a leader holds the store right now, and
the event log (which jobs a live leader has issued, since when, and whether
their packet's worker started; for the parts of the event log folded away, the
rollup keeps the jobs still issued, the reruns and the cache hits per target:
fntree/runtime/eventrollup.py). With no live leader, jobs an earlier leader had
issued are ready: that is what the next leader makes of them.
`--json` prints the same as one object whose keys are stable (`format` 2):

    format, jobstore, state ("completed" | "running" | "failed" | "stopped"),
    leader {alive, holder}, epoch,
    jobs {waiting, ready, queued, running, done, cached, failed},
    targets {name: {waiting, ready, queued, running, done, cached, failed}},
    cached {jobs, targets {name: count}},
    running [{name, job_id, attempt, since}],
    failed [{name, job_id, attempts, message, log, log_tail, debug_command}],
    restart_command (null when completed or a leader is running),
    env_changes [{time, set {name: value}, unset [name]}]  (restarts' --env, --env-unset)
    reruns [{time, epoch, root}]  (restarts with --rerun-changed; null where the event
        log no longer has them)

With `--logs`, each failed entry also has `log_text`, the job's whole kept log.
`cached` counts the done jobs whose value came from the cache across runs
instead of running (from the journal; for stores written before it recorded
them, from the event log). Format 2 added `queued` and `cached` to `jobs` and
`targets`, and `running` no longer counts jobs queued in Slurm's or Grid
Engine's queue; every key of format 1 is kept.
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
from fntree.runtime.eventparts import read_events
from fntree.runtime.eventrollup import load as load_rollup
from fntree.runtime.records import job_hex
from fntree.runtime.snapshot import STATES, empty_counts, snapshot
from fntree.runtime.state import RunState
from fntree.runtime.store import JobStore

FORMAT = 2
TAIL_LINES = 15


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
                        help="print a machine-readable object (stable keys, format 2)")
    add_max_log_mb(status)
    status.set_defaults(command=run)


def describe(store: JobStore, *, logs: bool = False, max_log_mb: float = 4.0) -> dict[str, Any]:
    """The status of the run in `store`, as `--json` prints it."""
    state, _, _ = store.recover(repair=False)
    holder = store.leader_alive()
    root = store.paths.root
    issued = _issued_now(store) if holder else {}
    if not holder:
        state.running.clear()  # what a restart does: the jobs it had issued are ready
    targets = snapshot(state).targets
    running: list[dict[str, Any]] = []
    for chain in state.chains.values():
        job = chain.job
        hex_id = job_hex(job.job_id) if job is not None else ""
        if job is None or chain.chain_id in state.failed:
            continue
        if hex_id in issued:
            attempt, since, kind = issued[hex_id]
            counts = targets[job.name]
            counts[_state_of(chain.chain_id, state)] -= 1
            counts[kind] += 1
        elif chain.chain_id in state.running:
            attempt, since, kind = state.running[chain.chain_id], None, "running"
        else:
            continue
        running.append({"name": job.name, "job_id": hex_id, "attempt": attempt,
                        "since": since, "state": kind})
    running.sort(key=lambda r: r["since"] or float("inf"))
    cached = {name: n for name, n in state.cached.items() if n} or _cached(store)
    for name, n in cached.items():
        targets.setdefault(name, empty_counts())["cached"] = n
    jobs = {kind: sum(t[kind] for t in targets.values()) for kind in STATES}
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
    rollup = load_rollup(store.paths)
    found = [{"time": t, "epoch": epoch, "root": root}
             for t, epoch, root in (rollup.reruns if rollup is not None else ())]
    found += [{"time": e["t"], "epoch": e["epoch"], "root": e["root"]}
              for e in read_events(store.paths) if e.get("ev") == "rerun"]
    found = found[-count:]
    return [{"time": None, "epoch": None, "root": None}] * (count - len(found)) + found


def _env_changes(store: JobStore) -> list[dict[str, Any]]:
    """The changes of the run's environment made at restarts, in order."""
    return [{"time": when, "set": {k: v for k, v in change.items() if v is not None},
             "unset": sorted(k for k, v in change.items() if v is None)}
            for when, change in store.config().get("env_changes", ())]


def _state_of(chain_id: int, state: RunState) -> str:
    """The state `snapshot` gave a live, not failed chain's job."""
    if chain_id in state.running:
        return "running"
    return "waiting" if state.chains[chain_id].status == "waiting" else "ready"


def _issued_now(store: JobStore) -> dict[str, tuple[int, float, str]]:
    """Jobs the live leader has issued and not heard back from: (attempt, since, state).

    The journal may not hold them yet (an issue is made durable with the next
    completion); the event log has them within a second. The state is "queued"
    until the packet's worker started, on a batch system that says when; else
    "running".
    """
    rollup = load_rollup(store.paths)  # jobs issued before the parts it folded ended
    issued = {} if rollup is None else {job: (v[1], v[2], v[4]) for job, v in
                                        rollup.issued.items()}
    queues = rollup is not None and rollup.queues
    for event in read_events(store.paths):
        kind = event.get("ev")
        if kind == "leader":
            issued.clear()
            queues = bool(event.get("queues"))
        elif kind == "issued":
            issued[event["job"]] = (event["attempt"], event["t"],
                                    "queued" if queues else "running")
        elif kind == "started":
            for job in event["jobs"]:
                if job in issued:
                    issued[job] = (issued[job][0], issued[job][1], "running")
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
    rollup = load_rollup(store.paths)  # the folded parts' hits, counted there by target
    counts = {} if rollup is None else {n: t.cached for n, t in rollup.targets.items()
                                        if t.cached}
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
    if status["state"] == "completed":
        n = jobs["cached"]
        cached = f" ({n} cached)" if n else ""
        out.print(f"state      [green]completed[/]: {jobs['done']} jobs done{cached}")
        return
    style = {"running": "bold", "failed": "bold red", "stopped": "yellow"}[status["state"]]
    out.print(f"state      [{style}]{status['state']}[/]")
    out.print("jobs       " + ", ".join(f"{jobs[kind]} {kind}" for kind in STATES))
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("target")
    for kind in STATES:
        table.add_column(kind, justify="right")
    for name, counts in status["targets"].items():
        table.add_row(name, *(_count(counts[k], k) for k in STATES))
    out.print(table)
    if leader["alive"] and status["running"]:
        now = time.time()
        out.print("[bold]issued now[/] (longest first)")
        for job in status["running"][:10]:
            since = f"{now - job['since']:.1f}s" if job["since"] else "?"
            out.print(f"  {job['name']} {job['job_id']} attempt {job['attempt']}, "
                      f"{job['state']} for {since}", markup=False)


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
