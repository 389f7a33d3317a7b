"""The long-tree lane: one tree of >= 200,000 jobs, its leader SIGKILLed again and again.

Opt-in (`python -m tests.chaos --long-tree`; not part of the default run, whose
pytest suite runs a small version, tests/chaos/test_long_tree.py). The tree is
tests/chaos/long_tree.py: values of several sizes across the 64 KiB inline
limit. The leader compacts while running (a 1 MiB floor and a ratio of 1, so
that a tree of this size compacts dozens of times) and its kills cycle through:

- each step of a compaction while running (`compact.*`, `objects.collect`),
  by crash point (fntree/runtime/crashpoints.py), the N-th time it is reached;
- half a journal frame written (`journal.torn`): a frame carrying the values
  under the limit, which travel inline;
- a SIGKILL at a random instant, while workers write the values over the limit
  out of line: a kill that cuts a value write leaves its temp file, counted
  as `values cut` (and an object no record refers to, which `check` names).

A crash point not reached within PATIENCE seconds is a random kill too.

After every kill `fntree check` must find no error; at the end the value must be
exact and the store clean. The lane counts into a harness `Tally` and prints
its own counts: kills by kind, compactions seen, values cut.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import long_tree
from harness import Tally, assert_clean_after_success, assert_sound, fntree_command, wait_until_gone

TREE = str(Path(__file__).with_name("long_tree.py"))
# The kills, in turn: an orphan value (a random kill's) is there for the next leader's
# collection at its start to remove.
CYCLE = ("compact.write", "random", "objects.collect", "compact.rename", "compact.snapshot",
         "random", "compact.segment", "compact.remove", "journal.torn", "random")
PATIENCE = 20.0  # seconds a crash point has to be reached before the leader is killed anyway
FLOOR = 1 << 20  # bytes: the lane compacts far more often than the default 4 MiB


def _cut_values(store: Path) -> bool:
    """Whether a value write was cut: a temp file in `objects/`."""
    objects = store / "objects"
    return objects.is_dir() and any(p.name.endswith(".tmp") for p in objects.iterdir())


def long_tree_campaign(workdir: Path, kills: int, width: int = 200, leaves: int = 1000,
                       seed: int = 1992, tally: Tally | None = None,
                       counts: Counter[str] | None = None, floor: int = FLOOR,
                       instant: tuple[float, float] = (2.0, 8.0),
                       cycle: tuple[str, ...] = CYCLE, ratio: float = 1.0) -> Tally:
    """Run the long tree to its end through `kills` leader SIGKILLs (fewer if it ends first).

    `floor`: the compaction floor (bytes); `instant`: the range of seconds after a
    leader starts in which a random kill lands; `cycle`: the kills, in turn; `ratio`: the
    compaction ratio (lower than the default 4, to compact more often)."""
    rng = random.Random(seed)
    tally = tally if tally is not None else Tally()
    counts = counts if counts is not None else Counter()
    workdir.mkdir(parents=True, exist_ok=True)
    store = workdir / f"long-{seed}"
    first = ["run", f"{TREE}:long_tree", str(seed), str(width), str(leaves), "--jobstore",
             str(store), "--no-progress"]
    landed = 0
    while True:
        kind = None if landed >= kills else cycle[landed % len(cycle)]
        env = {"FNTREE_COMPACT_BYTES": str(floor), "FNTREE_COMPACT_RATIO": str(ratio)}
        if kind is not None and kind != "random":
            env["FNTREE_CRASH_AT"] = f"{kind}:{rng.randint(1, 2)}"
        args = first if not store.exists() else ["restart", str(store), "--no-progress"]
        tally.restarts += args is not first
        began = time.monotonic()
        leader = fntree_command(*args, env=env)
        wait = None if kind is None else rng.uniform(*instant) if kind == "random" else PATIENCE
        try:
            out, err = leader.communicate(timeout=wait)
        except subprocess.TimeoutExpired:  # the random instant, or the point was not reached
            leader.kill()
            out, err = leader.communicate()
            kind = "random" if kind == "random" else f"{kind} not reached: random"
        if leader.returncode == -9:
            tally.seconds_cut += time.monotonic() - began
            landed += 1
            tally.leader_kills += 1
            counts[kind] += 1
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
    checked = time.monotonic()
    counts["compactions"] += max(int(p.stem) for p in (store / "journal").glob("*.log")) - 1
    assert int(out.strip()) == long_tree.expected(seed, width, leaves), "the value is not exact"
    assert_clean_after_success(store, tally)
    tally.trees += 1
    tally.jobs += long_tree.jobs(width, leaves)
    shutil.rmtree(store)
    tally.seconds_checking += time.monotonic() - checked
    return tally
