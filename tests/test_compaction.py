"""Compaction while running: when it happens, a SIGKILL at each of its steps, and the bound it
keeps on the journal (fntree/runtime/compaction.py)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import processes_mentioning, wait_for

import fntree
from fntree.runtime.check import ERROR, check
from fntree.runtime.compaction import RATIO, Compaction
from fntree.runtime.crashpoints import POINTS
from fntree.runtime.durable import HEADER, parse_header
from fntree.runtime.journal import MAGIC
from fntree.runtime.store import JobStore

TESTS = str(Path(__file__).parent)
SIZE = 80 << 10  # past the inline limit: every hop's argument is a value out of line
HOPS = 16
# A worker runs a chain's follow-ons itself for up to a second (CHAIN_BUDGET): a pause per hop
# makes the chain report to the leader in several turns, however idle the machine, so that
# compactions (one per commit in these tests) happen mid-run.
PAUSE = 0.25


@fntree.target
def hop(k: int, data: bytes) -> object:
    """`k` more hops, each passing on a new long argument; then the digest of the last."""
    if k == 0:
        return hashlib.sha256(data).hexdigest()
    time.sleep(PAUSE)
    return hop(k - 1, data[1:] + data[:1])


@fntree.target
def hops(k: int) -> object:
    return hop(k, bytes(range(256)) * (SIZE // 256))


def expected_hops(k: int) -> str:
    data = bytes(range(256)) * (SIZE // 256)
    return hashlib.sha256(data[k % len(data):] + data[:k % len(data)]).hexdigest()


@fntree.target
def one(i: int) -> int:
    return i


@fntree.target
def add(values: list[int]) -> int:
    return sum(values)


@fntree.target
def middle(base: int, leaves: int) -> fntree.Call:
    return add([one(base + i) for i in range(leaves)])


@fntree.target
def wide(width: int, leaves: int) -> fntree.Call:
    return add([middle(w * leaves, leaves) for w in range(width)])


def _leader(store: Path, call: str, **env: str) -> subprocess.Popen[bytes]:
    code = (f"import fntree, test_compaction as t; "
            f"print(fntree.run(t.{call}, jobstore={str(store)!r}))")
    return subprocess.Popen([sys.executable, "-c", code],
                            env={**os.environ, "PYTHONPATH": TESTS, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _frame_sizes(data: bytes) -> list[int]:
    """The sizes of the frames of a journal segment."""
    sizes, offset = [], 0
    while offset < len(data):
        header = parse_header(data, offset, MAGIC)
        assert header is not None
        sizes.append(HEADER.size + header[0])
        offset += sizes[-1]
    return sizes


def _assert_sound(store: Path) -> None:
    errors = [f.text for f in check(store) if f.level == ERROR]
    assert not errors, errors


def test_due_waits_for_the_floor_and_for_a_segment_as_long_as_the_live_state() -> None:
    """A segment is compacted once past the floor and RATIO times the snapshot, scaled to the
    chains live now against those in the snapshot."""
    compaction = Compaction(floor=1000, ratio=RATIO)
    assert not compaction.due(1000, 0) and compaction.due(1001, 0)
    compaction.saw(5000, 100)
    limit = int(RATIO * 5000)
    assert not compaction.due(limit, 100) and compaction.due(limit + 1, 100)
    assert compaction.due(limit // 10 + 1, 10), "a live state a tenth as large: sooner"
    assert not compaction.due(limit * 2, 200), "a live state twice as large: later"


COMPACTION_POINTS = [p for p in POINTS if p.startswith("compact.")] + ["objects.collect"]


@pytest.mark.parametrize("point", COMPACTION_POINTS)
def test_a_kill_at_each_step_of_a_compaction_while_running_opens_exact(
        store: Path, point: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL at a step of a mid-run compaction (objects.collect: the second collection, the
    first mid-run): check is sound, the restart's value exact and nothing is left over."""
    leader = _leader(store, f"hops({HOPS})", FNTREE_COMPACT_BYTES="1",
                     FNTREE_COMPACT_RATIO="0", FNTREE_CRASH_AT=f"{point}:2")
    leader.communicate(timeout=300)
    assert leader.returncode == -signal.SIGKILL, f"the crash point {point} was not reached"
    wait_for(lambda: not processes_mentioning(store), timeout=30)
    _assert_sound(store)
    monkeypatch.setenv("FNTREE_COMPACT_BYTES", "1")
    monkeypatch.setenv("FNTREE_COMPACT_RATIO", "0")
    assert fntree.restart(store, log_level="CRITICAL") == expected_hops(HOPS)
    _assert_sound(store)
    journal = sorted(p.name for p in (store / "journal").iterdir())
    assert len(journal) == 2 and journal[1].startswith("snapshot."), journal
    objects = [p.name for p in (store / "objects").iterdir()]
    assert not objects, f"no live job needs a value out of line any more: {objects}"


def test_after_a_kill_the_journal_holds_no_more_than_the_live_state_and_the_floor(
        store: Path) -> None:
    """SIGKILLed mid-run, the journal is a snapshot and one segment as long as the bound."""
    floor = 10_000
    leader = _leader(store, "wide(40, 100)", FNTREE_COMPACT_BYTES=str(floor),
                     FNTREE_CRASH_AT="leader.commit:12")
    leader.communicate(timeout=300)
    assert leader.returncode == -signal.SIGKILL, "the run ended before the kill"
    wait_for(lambda: not processes_mentioning(store), timeout=30)
    _assert_sound(store)
    journal = store / "journal"
    snapshots = list(journal.glob("snapshot.*"))
    assert len(snapshots) == 1, "a run of this length compacts while running"
    segments = list(journal.glob("*.log"))
    assert len(segments) == 1
    snapshot = snapshots[0].stat().st_size
    opened = JobStore.open(store)
    live = len(opened.replay(repair=True).state.chains)
    assert opened.compaction.snapshot_bytes == snapshot
    # The chains the snapshot holds, which its leader scaled it by (a restart's recovery
    # scales it by the chains live after the replay instead: `opened.compaction`).
    held = len(opened._load_snapshot(int(snapshots[0].name.split(".")[1])).chains)
    assert held
    # The bound of each check is RATIO times the snapshot scaled to the chains live at that
    # check; they rise and fall between the snapshot and the kill, so the test bounds them by
    # the most this tree can have live at once; and the commit that crossed it.
    most = 1 + 40 + 40 * 100 + 40 + 1  # the root, middles, leaves, the adds and the last add
    frames = _frame_sizes(segments[0].read_bytes())
    bound = max(floor, RATIO * snapshot * most / held) + max(frames)
    assert sum(frames) <= bound, (frames, snapshot, live, held)
    assert fntree.restart(store, log_level="CRITICAL") == sum(range(4000))
