"""The chaos harness: run seeded trees while killing and stopping their processes.

Shared by the pytest suite (`test_chaos.py`) and the extended run
(`python -m tests.chaos`). A campaign lands exactly the number of kills it is
asked for: it runs the suite's seeded trees, then fresh trees drawn from its own
seeded generator, until every kill has landed, and fails (AssertionError) if it
needs more trees than its bound. At most TREE_KILLS leader kills (TREE_WORKER_KILLS
outside kills) land in one tree, and its trees are of a size those kills span
(LEADER_TREE_JOBS, WORKER_TREE_JOBS), so the kills fall all through a tree's life
and little of it runs after the last one. After every kill `fntree check` must
pass; after every tree its value must be exact and no temp dir or process of the
run may survive. What happened, and where the time went, is counted in a `Tally`.
Campaigns may run at once in threads (lanes); `ABORT` stops the others when one fails.
The leader-kill campaign is here; the worker campaign is in tests/chaos/workers.py,
the disk campaign in tests/chaos/disk.py.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import tree
from processes import processes_mentioning, wait_for

from fntree.runtime.check import ERROR, check
from fntree.runtime.paths import StorePaths
from fntree.runtime.store import JobStore

TREE = str(Path(__file__).with_name("tree.py"))
SEEDS = [2, 7, 8, 9, 11, 4, 5, 3]
DEPTH = 6
TREE_KILLS = 12  # leader kills per tree at most, so a long campaign spans many trees
TREE_WORKER_KILLS = 20  # and outside kills of a run's processes
# The sizes of the trees a campaign runs (jobs, low and high): trees whose work its kills
# span, so that little of a tree runs after its last kill (that time proves nothing more).
LEADER_TREE_JOBS = (30, 1000)
WORKER_TREE_JOBS = (30, 600)


ABORT = threading.Event()  # set when one lane of a run failed: the others stop at their next tree


@dataclass
class Tally:
    """What a campaign did: kills, stops and disk fills, trees, jobs, restarts, checks."""

    leader_kills: int = 0
    worker_kills: int = 0
    worker_stops: int = 0
    worker_continues: int = 0  # stopped workers sent SIGCONT while still alive
    leader_stops: int = 0
    disk_fills: int = 0
    disk_exits: int = 0  # leaders that stopped with the full-disk error (then restarted)
    disk_refusals: int = 0  # job attempts that failed on the full disk (then retried)
    trees: int = 0
    jobs: int = 0
    restarts: int = 0
    checks: int = 0
    # where the time went (seconds, summed over lanes): leader runs cut by a kill, leader
    # runs to their end (or to a full disk), and waiting for a run's processes to go
    # plus `fntree check` and the checks of a completed tree
    seconds_cut: float = 0.0
    seconds_run: float = 0.0
    seconds_checking: float = 0.0

    def add(self, other: Tally) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def fntree_command(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "fntree", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


GRACE = 60.0  # seconds a dead leader's stdout and stderr may stay open (held by another process)


def communicate(leader: subprocess.Popen[str], timeout: float | None) -> tuple[str, str, bool]:
    """The leader's stdout and stderr once both have closed, and whether it was SIGKILLed
    here after `timeout` seconds (None: it runs to its end).

    Never waits forever: once the leader is dead, its pipes must close within GRACE
    seconds, or AssertionError names the processes that hold them (a process the leader
    left must not hold them: `fntree run ... | tee log` would hang too)."""
    began, cut = time.monotonic(), False
    while True:
        limit = GRACE if timeout is None or cut else max(0.0, began + timeout - time.monotonic())
        try:
            out, err = leader.communicate(timeout=limit)
            return out, err, cut
        except subprocess.TimeoutExpired:
            pass
        if leader.poll() is not None:  # dead, its pipes still open after a wait
            try:
                out, err = leader.communicate(timeout=GRACE)
                return out, err, cut
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"leader {leader.pid} exited {leader.returncode}, but its stdout or stderr "
                    f"is still held open by {pipe_holders(leader)}") from None
        if timeout is not None and not cut:
            leader.kill()
            cut = True


def pipe_holders(proc: subprocess.Popen[str]) -> list[str]:
    """The processes (pid, fd and command line) other than this one holding `proc`'s stdout
    or stderr pipe."""
    pipes = {f"pipe:[{os.fstat(f.fileno()).st_ino}]" for f in (proc.stdout, proc.stderr)
             if f is not None and not f.closed}
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            fds = [fd for fd in os.listdir(f"/proc/{pid}/fd")
                   if os.readlink(f"/proc/{pid}/fd/{fd}") in pipes]
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if fds:
            found.append(f"{pid} (fd {', '.join(fds)}: {command.decode(errors='replace')})")
    return found


def assert_interrupted_creation(store: Path, tally: Tally | None = None) -> None:
    """A store whose creation was cut off: `fntree check` and `fntree restart` say so (remove
    it and run again), and nothing else."""
    errors = [f.text for f in check(store) if f.level == ERROR]
    if tally is not None:
        tally.checks += 1
    assert len(errors) == 1 and "creation was interrupted" in errors[0], errors
    again = fntree_command("restart", str(store), "--no-progress")
    _, err, _ = communicate(again, None)
    assert again.returncode == 2 and "remove it and run again" in err, err[-2000:]


def assert_sound(store: Path, tally: Tally | None = None) -> None:
    errors = [f.text for f in check(store) if f.level == ERROR]
    if tally is not None:
        tally.checks += 1
    assert not errors, errors


def wait_until_gone(store: Path) -> None:
    deadline = time.monotonic() + 10
    while processes_mentioning(store):
        assert time.monotonic() < deadline, f"processes of {store} outlived their leader"
        time.sleep(0.02)


class Disk(Protocol):
    """The disk a store lives on, when it fills at random (tests/chaos/disk.py)."""

    def refused(self, stderr: str) -> bool: ...

    def wait_free(self) -> None: ...


def run_until_complete(store: Path, seed: int, rng: random.Random, options: list[str],
                       kills_left: int, env: dict[str, str] | None = None,
                       target: str = "node", rerun: bool = False,
                       tally: Tally | None = None, disk: Disk | None = None) -> tuple[int, int]:
    """Run the tree of `seed`, SIGKILLing the leader at random instants; (value, kills).

    At most `kills_left` kills land. `rerun`: the store holds a completed run,
    restarted with `--rerun-changed` until its RERUN record is durable, then with
    plain restarts. `disk`: a leader may stop with the full-disk error (then the
    store must be sound, and it is restarted once the disk has room); any other
    failed exit fails the campaign."""
    tally = tally if tally is not None else Tally()
    kills = 0
    first = ["run", f"{TREE}:{target}", str(seed), str(DEPTH), "--jobstore", str(store),
             "--no-progress", *options]
    while True:
        args = first if kills == 0 and not store.exists() else ["restart", str(store),
                                                                  "--no-progress"]
        if rerun and not JobStore.open(store).recover(repair=False)[0].reruns:
            args = [*args, "--rerun-changed"]
        began = time.monotonic()
        leader = fntree_command(*args, env=env)
        if args is first:  # kills are for runs, not for store creation (test_kill_while_...)
            wait_for(lambda p=leader: p.poll() is not None or _created(store), timeout=120)
        else:
            tally.restarts += 1
        out, err, cut = communicate(leader, rng.uniform(0.3, 1.5) if kills < kills_left
                                    else 300)
        if cut:
            ended = time.monotonic()
            tally.seconds_cut += ended - began
            kills += 1
            wait_until_gone(store)
            assert_sound(store, tally)
            tally.seconds_checking += time.monotonic() - ended
            continue
        tally.seconds_run += time.monotonic() - began
        if leader.returncode != 0 and disk is not None and disk.refused(err):
            tally.disk_exits += 1
            wait_until_gone(store)
            if store.exists():
                assert_sound(store, tally)
            disk.wait_free()
            continue
        assert leader.returncode == 0, f"leader exited {leader.returncode}: {err[-3000:]}"
        return int(out.strip()), kills


def _created(store: Path) -> bool:
    return any(p.stat().st_size for p in (store / "journal").glob("*.log"))


def assert_clean_after_success(store: Path, tally: Tally | None = None) -> None:
    assert_sound(store, tally)
    gtd = store / "tmp" / "g"
    assert not gtd.exists() or not list(gtd.iterdir()), "a global temp dir outlived its chain"
    store_id = json.loads((store / "fntree.json").read_text())["store_id"]
    assert not StorePaths.local_base(store_id).exists(), "local temp dirs were left behind"
    assert not processes_mentioning(store)
    assert not processes_mentioning(store_id), "a process a job started outlived its job"


def run_lanes(campaigns: dict[str, Callable[..., object]],
              ended: Callable[[str, Tally], None] | None = None) -> tuple[dict[str, Tally],
                                                                          list[str]]:
    """Run each campaign in its own thread at once, each counting into its own Tally.

    Returns the tallies by name and the failures (name, error and traceback); the
    first failure sets ABORT, so the other lanes stop after their current tree.
    `ended(name, tally)` is called as each lane ends."""
    ABORT.clear()
    tallies = {name: Tally() for name in campaigns}
    failures: list[str] = []

    def lane(name: str) -> None:
        try:
            campaigns[name](tally=tallies[name])
        except BaseException as error:  # every failure of a lane is reported
            ABORT.set()
            failures.append(f"{name}: {error!r}\n{traceback.format_exc()}")
        if ended is not None:
            ended(name, tallies[name])

    threads = [threading.Thread(target=lane, args=(name,), name=name) for name in campaigns]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tallies, failures


def leader_lanes(workdir: Path, kills: int, lanes: int,
                 seed: int | None = None) -> dict[str, Callable[..., object]]:
    """`kills` leader kills split over `lanes` leader-kill campaigns, for `run_lanes`."""
    runs: dict[str, Callable[..., object]] = {}
    for i in range(lanes):
        if share(kills, lanes, i):
            runs[f"leader kills {i + 1}"] = functools.partial(
                leader_kill_campaign, workdir / f"leader-{i}", share(kills, lanes, i),
                first=SEEDS[i::lanes], seed=(20100917 if seed is None else seed) + 100 * i)
    return runs


def share(total: int, lanes: int, lane: int) -> int:
    """Lane `lane`'s part of `total`, the parts differing by one at most."""
    return total // lanes + (1 if lane < total % lanes else 0)


def total(tallies: dict[str, Tally]) -> Tally:
    """The sum of the lanes' tallies."""
    summed = Tally()
    for tally in tallies.values():
        summed.add(tally)
    return summed


def tree_seeds(rng: random.Random, bound: int, first: list[int] = SEEDS,
               jobs: tuple[int, int] = (1, 10**9)) -> Iterator[int]:
    """The seeds `first` (the suite's), then fresh ones from `rng`, of trees of `jobs`
    jobs (low, high) only; AssertionError past `bound` trees, and the end once ABORT
    is set (another lane failed)."""
    given = 0
    for seed in itertools.chain(first, iter(lambda: rng.randrange(2**62), None)):
        if ABORT.is_set():
            return
        if not jobs[0] <= tree.size(seed, DEPTH) <= jobs[1]:
            continue
        if given == bound:
            raise AssertionError(f"{bound} trees were not enough to land every kill asked for")
        given += 1
        yield seed


def finish_tree(store: Path, seed: int, value: int, tally: Tally) -> None:
    """Check a completed tree (exact value, sound, clean), count it, remove its store."""
    began = time.monotonic()
    assert value == tree.expected(seed, DEPTH), f"tree {seed} gave {value}"
    assert_clean_after_success(store, tally)
    tally.trees += 1
    tally.jobs += tree.size(seed, DEPTH)
    shutil.rmtree(store)
    tally.seconds_checking += time.monotonic() - began


def leader_kill_campaign(workdir: Path, kills: int, seed: int = 20100917,
                         tally: Tally | None = None, first: list[int] = SEEDS) -> Tally:
    """Exactly `kills` leader SIGKILLs at random instants, at most TREE_KILLS a tree.

    Trees `first`, then fresh ones. Counts into `tally` (a new one if none) as it
    goes, and returns it."""
    rng, trees_rng = random.Random(seed), random.Random(seed + 1)
    tally = tally if tally is not None else Tally()
    workdir.mkdir(parents=True, exist_ok=True)
    start = tally.leader_kills
    seeds = tree_seeds(trees_rng, len(first) + kills, first, LEADER_TREE_JOBS)
    for tree_seed in seeds:
        if tally.leader_kills - start >= kills:
            break
        store = workdir / f"tree-{tree_seed}"
        value, landed = run_until_complete(store, tree_seed, rng, [],
                                           min(TREE_KILLS, kills - tally.leader_kills + start),
                                           tally=tally)
        tally.leader_kills += landed
        finish_tree(store, tree_seed, value, tally)
    return tally
