"""The worker campaign: a run's processes killed and stopped from outside, at random.

A `Harasser` thread SIGKILLs random processes of a run (workers, and what their
jobs started), SIGSTOPs workers and SIGCONTs them later, and pauses the leader
with SIGSTOP/SIGCONT, while `worker_campaign` runs seeded trees through it (with
two leader kills a tree too) until its quotas have landed; `worker_lanes` splits
the quotas over campaigns run at once (harness.run_lanes).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from harness import (
    SEEDS,
    TREE_WORKER_KILLS,
    WORKER_TREE_JOBS,
    Tally,
    finish_tree,
    run_until_complete,
    share,
    tree_seeds,
)
from processes import processes_mentioning

from fntree.batch import proctree


def worker_lanes(workdir: Path, kills: int, stops: int, leader_stops: int, lanes: int,
                 seed: int | None = None) -> dict[str, Callable[..., object]]:
    """Outside kills, worker stops and leader stops split over `lanes` worker campaigns."""
    runs: dict[str, Callable[..., object]] = {}
    for i in range(lanes):
        quota = (share(kills, lanes, i), share(stops, lanes, i), share(leader_stops, lanes, i))
        if any(quota):
            runs[f"worker kills {i + 1}"] = functools.partial(
                worker_campaign, workdir / f"workers-{i}", *quota, first=SEEDS[::-1][i::lanes],
                seed=(1917 if seed is None else seed + 50) + 100 * i)
    return runs


class Harasser(threading.Thread):
    """SIGKILLs random processes of a run (workers, their jobs' processes), SIGSTOPs workers
    and SIGCONTs them, and pauses the leader with SIGSTOP/SIGCONT.

    At random instants, so workers are hit booting, idle, receiving a packet,
    running and reporting. A stopped worker is continued after 0.05 s to 1.5 times
    the workers' silence limit: before the leader gives it up (it must carry on as
    if nothing happened) or after (the leader has killed it and run its job again).
    It stops once it has landed its quota.
    """

    def __init__(self, store: Path, rng: random.Random, kills: int, stops: int,
                 leader_stops: int, silence: float) -> None:
        super().__init__(daemon=True)
        self.store, self.rng, self.kills_left, self.stops_left = store, rng, kills, stops
        self.leader_stops_left, self.silence = leader_stops, silence
        self.kills = self.stops = self.continues = self.leader_stops = 0
        self.stopped: list[tuple[float, int]] = []  # (when to continue it, pid)
        self.done = threading.Event()

    def run(self) -> None:
        store_id = None
        try:
            while not self.done.wait(self.rng.uniform(0.02, 0.25)):
                self.continue_workers(time.monotonic())
                if (self.kills >= self.kills_left and self.stops >= self.stops_left
                        and self.leader_stops >= self.leader_stops_left):
                    if not self.stopped:
                        return
                    continue
                if self.leader_stops < self.leader_stops_left and self.rng.random() < 0.03:
                    self.pause_leader()
                    continue
                if store_id is None:
                    try:
                        store_id = json.loads((self.store / "fntree.json").read_text())["store_id"]
                    except (OSError, ValueError):
                        continue
                self.strike(store_id)
        finally:
            self.continue_workers(float("inf"))

    def strike(self, store_id: str) -> None:
        stopped = {pid for _, pid in self.stopped}  # left for their SIGCONT or the leader
        pids = [p for p in proctree.marked(proctree.RUN_MARK, store_id) if p not in stopped]
        workers = [p for p in pids if b"fntree._worker" in _cmdline(p)]
        stop = self.stops < self.stops_left and workers and self.rng.random() < 0.15
        victims = workers if stop else pids
        if not victims or (not stop and self.kills >= self.kills_left):
            return
        victim = self.rng.choice(victims)
        try:
            os.kill(victim, signal.SIGSTOP if stop else signal.SIGKILL)
        except ProcessLookupError:
            return
        if stop:
            self.stops += 1
            due = time.monotonic() + self.rng.uniform(0.05, 1.5 * self.silence)
            self.stopped.append((due, victim))
        else:
            self.kills += 1

    def continue_workers(self, now: float) -> None:
        """SIGCONT the stopped workers whose pause is over (if the leader has not killed them)."""
        for due, pid in [s for s in self.stopped if s[0] <= now]:
            self.stopped.remove((due, pid))
            if _state(pid) == "T":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
                    self.continues += 1

    def pause_leader(self) -> None:
        """SIGSTOP the leader for up to three seconds (longer than its workers' silence limit)."""
        leaders = [p for p in processes_mentioning(self.store)
                   if b"fntree._worker" not in _cmdline(p) and b"proctree" not in _cmdline(p)]
        if not leaders:
            return
        try:
            os.kill(leaders[0], signal.SIGSTOP)
        except ProcessLookupError:
            return
        self.leader_stops += 1
        time.sleep(self.rng.uniform(0.1, 3.0))
        with contextlib.suppress(ProcessLookupError):
            os.kill(leaders[0], signal.SIGCONT)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _state(pid: int) -> str:
    """A process's state letter ("T" stopped), or "" if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return ""
    return stat[stat.rfind(b")") + 2:][:1].decode()


def worker_campaign(workdir: Path, kills: int, stops: int, leader_stops: int,
                    seed: int = 1917, tally: Tally | None = None,
                    first: list[int] = SEEDS) -> Tally:
    """Exactly `kills` SIGKILLs of a run's processes from outside, `stops` SIGSTOPs of its
    workers (each SIGCONTed later) and `leader_stops` pauses of its leader, with two
    leader kills and at most TREE_WORKER_KILLS outside kills a tree.

    Trees `first`, then fresh ones. Counts into `tally` (a new one if none) as it
    goes, and returns it."""
    rng, trees_rng = random.Random(seed), random.Random(seed + 1)
    silence = 2.0
    env = {"FNTREE_WORKER_SILENCE": str(silence)}
    tally = tally if tally is not None else Tally()
    workdir.mkdir(parents=True, exist_ok=True)
    base = Tally()
    base.add(tally)
    for tree_seed in tree_seeds(trees_rng, len(first) + kills + stops + leader_stops, first,
                                WORKER_TREE_JOBS):
        left = (kills - tally.worker_kills + base.worker_kills,
                stops - tally.worker_stops + base.worker_stops,
                leader_stops - tally.leader_stops + base.leader_stops)
        if not any(left):
            break
        store = workdir / f"tree-{tree_seed}"
        harasser = Harasser(store, random.Random(tree_seed), min(TREE_WORKER_KILLS, left[0]),
                            left[1], left[2], silence)
        harasser.start()
        try:
            value, landed = run_until_complete(store, tree_seed, rng, ["--retry-count", "1000"],
                                               2, env, tally=tally)
        finally:
            harasser.done.set()
            harasser.join()
        tally.leader_kills += landed
        tally.worker_kills += harasser.kills
        tally.worker_stops += harasser.stops
        tally.worker_continues += harasser.continues
        tally.leader_stops += harasser.leader_stops
        finish_tree(store, tree_seed, value, tally)
    return tally
