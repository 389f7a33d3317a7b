"""Chaos: kill the leader at random instants, kill workers, make targets raise; it completes.

Each check is what jobTree's crash test checked, and more: the final value is
exact (a leaf counted twice or lost changes it), every recorded completion is
recorded once (`fntree check`, after every kill), no temp dir and no process of
the run survives it. `FNTREE_CHAOS_KILLS` sets how many leader kills to land
(default 30); `FNTREE_CHAOS_WORKER_KILLS` how many SIGKILLs of random worker
processes and of the processes their jobs started, from outside, at random
instants (default 30), and `FNTREE_CHAOS_WORKER_STOPS` how many SIGSTOPs of
workers (default 5), `FNTREE_CHAOS_LEADER_STOPS` how many SIGSTOP/SIGCONT pauses
of the leader (default 3), `FNTREE_CHAOS_CACHE_KILLS` how many leader kills to land
in each of the two runs of a tree through one cache and in its `--rerun-changed`
restart (default 4); seeds make every run reproducible.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import tree
from conftest import TALLY
from processes import processes_mentioning, wait_for

from fntree.batch import proctree
from fntree.runtime.check import ERROR, check
from fntree.runtime.crashpoints import POINTS
from fntree.runtime.eventlog import read_events
from fntree.runtime.paths import StorePaths
from fntree.runtime.store import JobStore

TREE = str(Path(__file__).with_name("tree.py"))
KILLS = int(os.environ.get("FNTREE_CHAOS_KILLS") or 30)
WORKER_KILLS = int(os.environ.get("FNTREE_CHAOS_WORKER_KILLS") or 30)
WORKER_STOPS = int(os.environ.get("FNTREE_CHAOS_WORKER_STOPS") or 5)
LEADER_STOPS = int(os.environ.get("FNTREE_CHAOS_LEADER_STOPS") or 3)
CACHE_KILLS = int(os.environ.get("FNTREE_CHAOS_CACHE_KILLS") or 4)  # in each of two runs
SEEDS = [2, 7, 8, 9, 11, 4, 5, 3]
DEPTH = 6


def fntree_command(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "fntree", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ, **(env or {})})


def assert_sound(store: Path) -> None:
    errors = [f.text for f in check(store) if f.level == ERROR]
    assert not errors, errors


def wait_until_gone(store: Path) -> None:
    deadline = time.monotonic() + 10
    while processes_mentioning(store):
        assert time.monotonic() < deadline, f"processes of {store} outlived their leader"
        time.sleep(0.02)


def run_until_complete(store: Path, seed: int, rng: random.Random, options: list[str],
                       kills_left: int, env: dict[str, str] | None = None,
                       target: str = "node", rerun: bool = False) -> tuple[int, int]:
    """Run the tree of `seed`, SIGKILLing the leader at random instants; (value, kills).

    `rerun`: the store holds a completed run, restarted with `--rerun-changed` until
    its RERUN record is durable, then with plain restarts."""
    kills = 0
    first = ["run", f"{TREE}:{target}", str(seed), str(DEPTH), "--jobstore", str(store),
             "--no-progress", *options]
    while True:
        args = first if kills == 0 and not store.exists() else ["restart", str(store),
                                                                  "--no-progress"]
        if rerun and not JobStore.open(store).recover(repair=False)[0].reruns:
            args = [*args, "--rerun-changed"]
        leader = fntree_command(*args, env=env)
        if args is first:  # kills are for runs, not for store creation (test_kill_while_...)
            wait_for(lambda p=leader: p.poll() is not None or _created(store), timeout=120)
        try:
            out, _ = leader.communicate(timeout=rng.uniform(0.3, 1.5) if kills < kills_left
                                        else 300)
        except subprocess.TimeoutExpired:
            leader.kill()
            leader.communicate()
            kills += 1
            wait_until_gone(store)
            assert_sound(store)
            continue
        assert leader.returncode == 0, f"leader exited {leader.returncode}"
        return int(out.strip()), kills


def _created(store: Path) -> bool:
    return any(p.stat().st_size for p in (store / "journal").glob("*.log"))


def assert_clean_after_success(store: Path) -> None:
    assert_sound(store)
    gtd = store / "tmp" / "g"
    assert not gtd.exists() or not list(gtd.iterdir()), "a global temp dir outlived its chain"
    store_id = json.loads((store / "fntree.json").read_text())["store_id"]
    assert not StorePaths.local_base(store_id).exists(), "local temp dirs were left behind"
    assert not processes_mentioning(store)
    assert not processes_mentioning(store_id), "a process a job started outlived its job"


def count_in_logs(store: Path, text: str) -> int:
    return sum(p.read_text(errors="replace").count(text) for p in (store / "logs").rglob("*.log")) \
        if (store / "logs").exists() else 0


def test_leader_killed_at_random_instants(tmp_path: Path) -> None:
    """Dozens of leader SIGKILLs at random instants; every tree still gets its exact value."""
    rng = random.Random(20100917)
    kills = 0
    for seed in SEEDS:
        if kills >= KILLS:
            break
        store = tmp_path / f"tree-{seed}"
        value, landed = run_until_complete(store, seed, rng, [], KILLS - kills)
        kills += landed
        assert value == tree.expected(seed, DEPTH)
        assert_clean_after_success(store)
        TALLY["trees completed"] += 1
        TALLY["jobs in those trees"] += tree.size(seed, DEPTH)
    TALLY["leader kills"] += kills
    assert kills >= min(KILLS, 30)


def test_leader_workers_and_targets_fail_together(tmp_path: Path) -> None:
    """Leader kills, worker kills and raising targets at once, with retries enough to finish."""
    rng = random.Random(2009)
    options = ["--fault-kill", "0.05", "--fault-raise", "0.1", "--fault-seed", "7",
               "--retry-count", "25"]
    store = tmp_path / "tree"
    value, kills = run_until_complete(store, 8, rng, options, 8)
    assert value == tree.expected(8, DEPTH)
    assert_clean_after_success(store)
    TALLY["leader kills"] += kills
    TALLY["worker kills injected"] += count_in_logs(store, "killed by signal 9")
    TALLY["raises injected"] += count_in_logs(store, "InjectedFault:")
    TALLY["trees completed"] += 1
    TALLY["jobs in those trees"] += tree.size(8, DEPTH)
    assert count_in_logs(store, "InjectedFault:") > 0


def test_tree_run_twice_through_a_cache(tmp_path: Path) -> None:
    """A tree run twice through one cache, then restarted with --rerun-changed, the leader
    killed at random instants in all three: the second run and the re-run take the leaves
    and sums from the cache, and every value is exact."""
    rng = random.Random(1966)
    options = ["--cache", str(tmp_path / "cache")]
    seed = 8
    for name in ("first", "second"):
        store = tmp_path / name
        value, kills = run_until_complete(store, seed, rng, options, CACHE_KILLS,
                                          target="cached_node")
        assert value == tree.expected(seed, DEPTH)
        assert_clean_after_success(store)
        TALLY["leader kills"] += kills
        TALLY["trees completed"] += 1
        TALLY["jobs in those trees"] += tree.size(seed, DEPTH)
    hits = [e for e in read_events(StorePaths(tmp_path / "second"))
            if e.get("ev") == "done" and e.get("cached")]
    assert hits, "the second run took nothing from the cache"
    TALLY["cache hits"] += len(hits)
    store = tmp_path / "second"
    value, kills = run_until_complete(store, seed, rng, [], CACHE_KILLS, rerun=True)
    assert value == tree.expected(seed, DEPTH)
    assert_clean_after_success(store)
    assert JobStore.open(store).recover(repair=False)[0].reruns >= 1
    TALLY["leader kills"] += kills


@pytest.mark.parametrize("point", [p for p in POINTS if p != "store.create"])
def test_kill_inside_the_commit(tmp_path: Path, point: str) -> None:
    """A kill between any two steps of the leader's commit loses nothing and doubles nothing."""
    store = tmp_path / "tree"
    nth = 1 if point == "leader.start" else 3  # a leader reaches its start once
    env = {"FNTREE_CRASH_AT": f"{point}:{nth}", "FNTREE_COMPACT_BYTES": "4000"}
    leader = fntree_command("run", f"{TREE}:node", "7", str(DEPTH), "--jobstore", str(store),
                            "--no-progress", env=env)
    leader.communicate(timeout=120)
    assert leader.returncode == -9, f"the crash point {point} was not reached"
    wait_until_gone(store)
    assert_sound(store)
    TALLY["commit-window kills"] += 1
    again = fntree_command("restart", str(store), "--no-progress",
                           env={"FNTREE_COMPACT_BYTES": "4000"})
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0
    assert int(out) == tree.expected(7, DEPTH)
    assert_clean_after_success(store)


def test_kill_while_creating_the_store(tmp_path: Path) -> None:
    """A store whose creation was cut off says so, and check reports it."""
    store = tmp_path / "tree"
    leader = fntree_command("run", f"{TREE}:node", "7", "2", "--jobstore", str(store),
                            env={"FNTREE_CRASH_AT": "store.create"})
    leader.communicate(timeout=60)
    assert leader.returncode == -9
    findings = check(store)
    assert any("interrupted" in f.text for f in findings if f.level == ERROR)
    out = subprocess.run([sys.executable, "-m", "fntree", "restart", str(store)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "remove it and run again" in out.stderr


def test_orphaned_worker_cannot_report_into_a_later_run(tmp_path: Path) -> None:
    """A worker that outlives its leader finishes its job, but its result never lands."""
    store = tmp_path / "store"
    marker = tmp_path / "finished"
    script = tmp_path / "slow.py"
    script.write_text(
        "import time, fntree\n"
        "@fntree.target\n"
        "def slow(marker: str) -> str:\n"
        "    open(marker + '.started', 'w').close()\n"
        "    time.sleep(1.5)\n"
        "    with open(marker, 'a') as f:\n"
        "        f.write(fntree.context().job_id + ' ' + str(fntree.context().attempt) + '\\n')\n"
        "    return 'done'\n")
    env = {"FNTREE_KEEP_ORPHANS": "1"}
    leader = fntree_command("run", f"{script}:slow", str(marker), "--jobstore", str(store),
                            "--no-progress", env=env)
    wait_for(lambda: Path(f"{marker}.started").exists(), timeout=120)
    leader.kill()
    leader.wait()
    orphans = processes_mentioning(store)
    assert orphans, "the worker should still be running, orphaned"
    again = fntree_command("restart", str(store), "--no-progress")
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 0 and out.strip() == "'done'"
    deadline = time.monotonic() + 10
    while processes_mentioning(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    runs = marker.read_text().split("\n")
    assert len([r for r in runs if r]) == 2, "the orphan and the new attempt each ran once"
    assert_sound(store)


class Harasser(threading.Thread):
    """SIGKILLs random processes of a run (workers, their jobs' processes) and SIGSTOPs workers.

    At random instants, so workers are hit booting, idle, receiving a packet,
    running and reporting; it stops once it has landed its quota.
    """

    def __init__(self, store: Path, rng: random.Random, kills: int, stops: int,
                 leader_stops: int) -> None:
        super().__init__(daemon=True)
        self.store, self.rng, self.kills_left, self.stops_left = store, rng, kills, stops
        self.leader_stops_left = leader_stops
        self.kills = self.stops = self.leader_stops = 0
        self.done = threading.Event()

    def run(self) -> None:
        store_id = None
        while not self.done.wait(self.rng.uniform(0.02, 0.25)):
            if (self.kills >= self.kills_left and self.stops >= self.stops_left
                    and self.leader_stops >= self.leader_stops_left):
                return
            if self.leader_stops < self.leader_stops_left and self.rng.random() < 0.03:
                self.pause_leader()
                continue
            if store_id is None:
                try:
                    store_id = json.loads((self.store / "fntree.json").read_text())["store_id"]
                except (OSError, ValueError):
                    continue
            self.strike(store_id)

    def strike(self, store_id: str) -> None:
        pids = proctree.marked(proctree.RUN_MARK, store_id)
        workers = [p for p in pids if b"fntree._worker" in _cmdline(p)]
        stop = self.stops < self.stops_left and workers and self.rng.random() < 0.15
        victims = workers if stop else pids
        if not victims or (not stop and self.kills >= self.kills_left):
            return
        try:
            os.kill(self.rng.choice(victims), signal.SIGSTOP if stop else signal.SIGKILL)
        except ProcessLookupError:
            return
        if stop:
            self.stops += 1
        else:
            self.kills += 1


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


def test_workers_killed_and_stopped_from_outside(tmp_path: Path) -> None:
    """Workers and their jobs' processes killed, workers and leader stopped and killed: exact."""
    rng = random.Random(1917)
    env = {"FNTREE_WORKER_SILENCE": "2"}
    kills = stops = leader_kills = leader_stops = 0
    for seed in SEEDS:
        if kills >= WORKER_KILLS and stops >= WORKER_STOPS and leader_stops >= LEADER_STOPS:
            break
        store = tmp_path / f"tree-{seed}"
        harasser = Harasser(store, random.Random(seed), WORKER_KILLS - kills,
                            WORKER_STOPS - stops, LEADER_STOPS - leader_stops)
        harasser.start()
        try:
            value, landed = run_until_complete(store, seed, rng, ["--retry-count", "1000"], 2,
                                               env)
        finally:
            harasser.done.set()
            harasser.join()
        kills, stops, leader_kills = (kills + harasser.kills, stops + harasser.stops,
                                      leader_kills + landed)
        leader_stops += harasser.leader_stops
        assert value == tree.expected(seed, DEPTH)
        assert_clean_after_success(store)
        TALLY["trees completed"] += 1
        TALLY["jobs in those trees"] += tree.size(seed, DEPTH)
    TALLY["leader kills"] += leader_kills
    TALLY["worker kills from outside"] += kills
    TALLY["worker stops"] += stops
    TALLY["leader stops"] += leader_stops
    assert kills >= WORKER_KILLS and stops >= WORKER_STOPS and leader_stops >= LEADER_STOPS
