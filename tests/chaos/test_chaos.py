"""Chaos: kill the leader at random instants, kill workers, make targets raise; it completes.

Each check is what jobTree's crash test checked, and more: the final value is
exact (a leaf counted twice or lost changes it), every recorded completion is
recorded once (`fntree check`, after every kill), no temp dir and no process of
the run survives it. `FNTREE_CHAOS_KILLS` sets how many leader kills to land
(default 30); `FNTREE_CHAOS_WORKER_KILLS` how many SIGKILLs of random worker
processes and of the processes their jobs started, from outside, at random
instants (default 30), and `FNTREE_CHAOS_WORKER_STOPS` how many SIGSTOP/SIGCONTs
of workers (default 5), `FNTREE_CHAOS_LEADER_STOPS` how many SIGSTOP/SIGCONT pauses
of the leader (default 3), `FNTREE_CHAOS_DISK_FILLS` how many times the store's
disk (a tmpfs, where this runs as root; skipped elsewhere) fills and frees
(default 5), `FNTREE_CHAOS_LANES` over how many campaigns run at once the leader
and the worker kills are split (default 2), `FNTREE_CHAOS_CACHE_KILLS` how many leader kills to land
in each of the two runs of a tree through one cache and in its `--rerun-changed`
restart (default 4); seeds make every run reproducible. Each count lands exactly,
over as many seeded trees as it takes (tests/chaos/harness.py); the same campaigns
run outside pytest, with a tally, as `python -m tests.chaos` (tests/chaos/__main__.py;
tests/chaos/disk.py for the disk).
"""

from __future__ import annotations

import functools
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import tree
from conftest import TALLY
from disk import can_mount, disk_campaign
from harness import (
    DEPTH,
    TREE,
    Tally,
    assert_clean_after_success,
    assert_sound,
    fntree_command,
    leader_lanes,
    run_lanes,
    run_until_complete,
    total,
    wait_until_gone,
)
from processes import processes_mentioning, wait_for
from workers import worker_lanes

from fntree.runtime.check import ERROR, check
from fntree.runtime.crashpoints import POINTS
from fntree.runtime.eventlog import read_events
from fntree.runtime.paths import StorePaths
from fntree.runtime.store import JobStore

KILLS = int(os.environ.get("FNTREE_CHAOS_KILLS") or 30)
WORKER_KILLS = int(os.environ.get("FNTREE_CHAOS_WORKER_KILLS") or 30)
WORKER_STOPS = int(os.environ.get("FNTREE_CHAOS_WORKER_STOPS") or 5)
LEADER_STOPS = int(os.environ.get("FNTREE_CHAOS_LEADER_STOPS") or 3)
CACHE_KILLS = int(os.environ.get("FNTREE_CHAOS_CACHE_KILLS") or 4)  # in each of two runs
DISK_FILLS = int(os.environ.get("FNTREE_CHAOS_DISK_FILLS") or 5)
LANES = int(os.environ.get("FNTREE_CHAOS_LANES") or 2)  # campaigns run at once


def count_in_logs(store: Path, text: str) -> int:
    return sum(p.read_text(errors="replace").count(text) for p in (store / "logs").rglob("*.log")) \
        if (store / "logs").exists() else 0


def add_to_tally(tally: Tally) -> None:
    TALLY["leader kills"] += tally.leader_kills
    TALLY["worker kills from outside"] += tally.worker_kills
    TALLY["worker stops"] += tally.worker_stops
    TALLY["worker continues"] += tally.worker_continues
    TALLY["leader stops"] += tally.leader_stops
    TALLY["disk fills"] += tally.disk_fills
    TALLY["leader stops on a full disk"] += tally.disk_exits
    TALLY["job attempts failed on a full disk"] += tally.disk_refusals
    TALLY["trees completed"] += tally.trees
    TALLY["jobs in those trees"] += tally.jobs
    TALLY["restarts"] += tally.restarts
    TALLY["check runs"] += tally.checks


def in_lanes(campaigns: dict[str, Callable[..., object]]) -> Tally:
    """Run the campaigns at once (tests/chaos/harness.py `run_lanes`); their summed tally."""
    tallies, failures = run_lanes(campaigns)
    add_to_tally(total(tallies))
    assert not failures, "\n".join(failures)
    return total(tallies)


def test_leader_killed_at_random_instants(tmp_path: Path) -> None:
    """Exactly FNTREE_CHAOS_KILLS leader SIGKILLs at random instants; every tree exact."""
    tally = in_lanes(leader_lanes(tmp_path, KILLS, LANES))
    assert tally.leader_kills == KILLS


def test_leader_workers_and_targets_fail_together(tmp_path: Path) -> None:
    """Leader kills, worker kills and raising targets at once, with retries enough to finish."""
    rng = random.Random(2009)
    options = ["--fault-kill", "0.05", "--fault-raise", "0.1", "--fault-seed", "7",
               "--retry-count", "25"]
    store, tally = tmp_path / "tree", Tally()
    value, kills = run_until_complete(store, 8, rng, options, 8, tally=tally)
    assert value == tree.expected(8, DEPTH)
    assert_clean_after_success(store, tally)
    add_to_tally(tally)
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
    seed, tally = 8, Tally()
    for name in ("first", "second"):
        store = tmp_path / name
        value, kills = run_until_complete(store, seed, rng, options, CACHE_KILLS,
                                          target="cached_node", tally=tally)
        assert value == tree.expected(seed, DEPTH)
        assert_clean_after_success(store, tally)
        TALLY["leader kills"] += kills
        TALLY["trees completed"] += 1
        TALLY["jobs in those trees"] += tree.size(seed, DEPTH)
    hits = [e for e in read_events(StorePaths(tmp_path / "second"))
            if e.get("ev") == "done" and e.get("cached")]
    assert hits, "the second run took nothing from the cache"
    TALLY["cache hits"] += len(hits)
    store = tmp_path / "second"
    value, kills = run_until_complete(store, seed, rng, [], CACHE_KILLS, rerun=True,
                                      tally=tally)
    assert value == tree.expected(seed, DEPTH)
    assert_clean_after_success(store, tally)
    assert JobStore.open(store).recover(repair=False)[0].reruns >= 1
    TALLY["leader kills"] += kills
    add_to_tally(tally)


# The leader's commit points; objects.* are in the process that writes a value stored out of
# line (a worker, mostly), which the chaos trees' small values never reach: tests/test_values.py
# kills the worker and the leader there.
COMMIT_POINTS = [p for p in POINTS if p != "store.create" and not p.startswith("objects.")]


@pytest.mark.parametrize("point", COMMIT_POINTS)
def test_kill_inside_the_commit(tmp_path: Path, point: str) -> None:
    """A kill between any two steps of the leader's commit loses nothing and doubles nothing."""
    store = tmp_path / "tree"
    nth = 1 if point in ("leader.start", "events.fold") else 3  # (start: once a leader)
    env = {"FNTREE_CRASH_AT": f"{point}:{nth}", "FNTREE_COMPACT_BYTES": "4000"}
    if point == "events.fold":  # each flush of events a part, all but the newest folded
        env.update(FNTREE_EVENT_PART_BYTES="200", FNTREE_EVENT_KEEP_BYTES="1")
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


def test_workers_killed_and_stopped_from_outside(tmp_path: Path) -> None:
    """Workers and their jobs' processes killed, workers stopped and continued, the leader
    stopped, continued and killed: exact."""
    tally = in_lanes(worker_lanes(tmp_path, WORKER_KILLS, WORKER_STOPS, LEADER_STOPS, LANES))
    assert (tally.worker_kills, tally.worker_stops, tally.leader_stops) == (
        WORKER_KILLS, WORKER_STOPS, LEADER_STOPS)


def test_disk_fills_and_frees_at_random(tmp_path: Path) -> None:
    """The store on a small tmpfs that fills and frees at random: jobs that cannot write are
    retried, a leader that cannot write stops with the full-disk error, the store stays
    sound and every tree exact."""
    why = can_mount()
    if why:
        pytest.skip(f"the disk-full campaign is skipped: {why}")
    tally = in_lanes({"disk fills": functools.partial(disk_campaign, tmp_path, DISK_FILLS)})
    assert tally.disk_fills == DISK_FILLS
