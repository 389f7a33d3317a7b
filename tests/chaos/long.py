"""The long-tree lane: one tree of >= 200,000 jobs, its leader SIGKILLed again and again.

Opt-in (`python -m tests.chaos --long-tree`; not part of the default run, whose
pytest suite runs a small version, tests/chaos/test_long_tree.py). The tree is
tests/chaos/long_tree.py: values of several sizes across the 64 KiB inline
limit, and a root argument over it. The leader compacts while running (a 1 MiB
floor and a ratio of 0.25, so that a tree of this size compacts dozens of times
and a restarted leader soon reaches its next compaction) and its kills are:

- first, the leader's own value writes (`objects.write@leader`,
  `objects.rename@leader`: the root's long argument, written out of line as the
  store is created, before its journal): the store is then an interrupted
  creation, which `fntree check` and `fntree restart` must call so (remove it and
  run again), and the lane does;
- then, in turn (CYCLE), by crash point (fntree/runtime/crashpoints.py), the N-th
  time it is reached: each step of a compaction while running (`compact.*`,
  `objects.collect`); half a journal frame written (`journal.torn`: a frame
  carrying the values under the limit, which travel inline); a worker's value
  write cut by the leader's SIGKILL (`objects.write@worker`: its temp file
  written, `objects.rename@worker`: renamed, no record refers to it yet; the
  worker SIGKILLs its leader there); and a SIGKILL at a random instant.

A crash point not reached within PATIENCE seconds is a random kill, and the
same point is aimed at again by the next leader (once). A kill that leaves a
value's temp file is counted as `values cut`.

After every kill the leader's stdout and stderr must close (no process it left
holds them: `communicate` names any that does, never waits forever) and
`fntree check` must find no error; at the end the value must be exact and the
store clean. The lane counts into a harness `Tally` and its kills by kind into
`counts`.
"""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from pathlib import Path

import long_tree
from harness import (
    Tally,
    assert_clean_after_success,
    assert_interrupted_creation,
    assert_sound,
    communicate,
    fntree_command,
    wait_until_gone,
)

TREE = str(Path(__file__).with_name("long_tree.py"))
PAD = "p" * long_tree.BALLAST  # the root's long argument: the leader stores it out of line
CREATION = ("objects.write@leader", "objects.rename@leader")
# The kills, in turn: an orphan value (a random kill's, a cut value write's) is there for the
# next leader's collection at its start to remove.
CYCLE = ("compact.write", "objects.write@worker", "objects.collect", "compact.rename",
         "compact.snapshot", "random", "objects.rename@worker", "compact.segment",
         "compact.remove", "journal.torn", "random")
PATIENCE = 60.0  # seconds a crash point has to be reached before the leader is killed anyway
FLOOR = 1 << 20  # bytes: the lane compacts far more often than the default 4 MiB
RATIO = 0.25  # and sooner after the snapshot than the default 4


def _cut_values(store: Path) -> bool:
    """Whether a value write was cut: a temp file in `objects/`."""
    objects = store / "objects"
    return objects.is_dir() and any(p.name.endswith(".tmp") for p in objects.iterdir())


def _armed(kind: str, nth: int) -> dict[str, str]:
    """The environment that lands `kind` the `nth` time it is reached (nothing for a random
    kill)."""
    if kind == "random":
        return {}
    point, _, where = kind.partition("@")
    return {"FNTREE_CRASH_AT": f"{point}:{nth}" + (f"@{where}" if where else "")}


def _creation_kills(store: Path, first: list[str], env: dict[str, str], tally: Tally,
                    counts: Counter[str]) -> None:
    """Kill the first leader at each of its own value writes; check and restart say the
    creation was interrupted; the store is removed and the run started again."""
    for kind in CREATION:
        point, _, where = kind.partition("@")
        leader = fntree_command(*first, env={**env, "FNTREE_CRASH_AT": f"{point}:1@{where}"})
        began = time.monotonic()
        _, err, cut = communicate(leader, PATIENCE)
        assert not cut and leader.returncode == -9, \
            f"{kind} was not reached as the store was created: {err[-2000:]}"
        tally.seconds_cut += time.monotonic() - began
        tally.leader_kills += 1
        counts[kind] += 1
        counts["values cut"] += _cut_values(store)
        wait_until_gone(store)
        assert_interrupted_creation(store, tally)
        shutil.rmtree(store)


def long_tree_campaign(workdir: Path, kills: int, width: int = 200, leaves: int = 1000,
                       seed: int = 1992, tally: Tally | None = None,
                       counts: Counter[str] | None = None, floor: int = FLOOR,
                       instant: tuple[float, float] = (2.0, 8.0),
                       cycle: tuple[str, ...] = CYCLE, ratio: float = RATIO,
                       patience: float = PATIENCE, nth: tuple[int, int] = (1, 2)) -> Tally:
    """Run the long tree to its end through `kills` leader SIGKILLs after the CREATION
    ones (fewer if it ends first).

    `floor`: the compaction floor (bytes); `instant`: the range of seconds after a
    leader starts in which a random kill lands; `cycle`: the kills, in turn; `ratio`: the
    compaction ratio (lower than the default 4, to compact more often); `patience`:
    seconds an aimed kill waits for its crash point; `nth`: the range of N in
    `FNTREE_CRASH_AT=NAME:N` (the N-th time a leader, or a worker, reaches it)."""
    rng = random.Random(seed)
    tally = tally if tally is not None else Tally()
    counts = counts if counts is not None else Counter()
    workdir.mkdir(parents=True, exist_ok=True)
    store = workdir / f"long-{seed}"
    first = ["run", f"{TREE}:long_tree", str(seed), str(width), str(leaves), PAD, "--jobstore",
             str(store), "--no-progress"]
    env = {"FNTREE_COMPACT_BYTES": str(floor), "FNTREE_COMPACT_RATIO": str(ratio)}
    _creation_kills(store, first, env, tally, counts)
    landed, aimed, missed = 0, 0, False
    while True:
        kind = None if landed >= kills else cycle[aimed % len(cycle)]
        args = first if not store.exists() else ["restart", str(store), "--no-progress"]
        tally.restarts += args is not first
        began = time.monotonic()
        leader = fntree_command(*args, env={**env, **({} if kind is None
                                                      else _armed(kind, rng.randint(*nth)))})
        wait = None if kind is None else rng.uniform(*instant) if kind == "random" else patience
        out, err, cut = communicate(leader, wait)
        if kind is not None and cut and kind != "random":
            kind = f"{kind} not reached: random"
        if leader.returncode == -9:
            tally.seconds_cut += time.monotonic() - began
            landed += 1
            if "not reached" in (kind or "") and not missed:
                missed = True  # the next leader aims at the same point once more
            else:
                aimed, missed = aimed + 1, False
            tally.leader_kills += 1
            counts[kind or "?"] += 1
            counts["values cut"] += _cut_values(store)
            checked = time.monotonic()
            wait_until_gone(store)
            assert_sound(store, tally)
            tally.seconds_checking += time.monotonic() - checked
            continue
        tally.seconds_run += time.monotonic() - began
        assert leader.returncode == 0, f"leader exited {leader.returncode}: {err[-3000:]}"
        if kind is not None:
            counts[f"{kind}: the run ended first"] += 1
        break
    _finish(store, out, seed, width, leaves, tally, counts)
    return tally


def _finish(store: Path, out: str, seed: int, width: int, leaves: int, tally: Tally,
            counts: Counter[str]) -> None:
    """Check the completed tree (exact value, sound, clean), count it, remove its store."""
    checked = time.monotonic()
    counts["compactions"] += max(int(p.stem) for p in (store / "journal").glob("*.log")) - 1
    assert int(out.strip()) == long_tree.expected(seed, width, leaves, PAD), \
        "the value is not exact"
    assert_clean_after_success(store, tally)
    tally.trees += 1
    tally.jobs += long_tree.jobs(width, leaves)
    shutil.rmtree(store)
    tally.seconds_checking += time.monotonic() - checked

