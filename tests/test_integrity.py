"""Every bit of a job store's files is checked: a flipped bit is reported, or changes nothing.

Two real stores are made once per module: a completed run and a run SIGKILLed
mid-write (a torn tail), both compacted every turn so that they hold a snapshot.
Then, for every file of every kind, bits are flipped at a spread of positions
(headers, lengths, checksums, payload, first and last bytes), one at a time, in
place, and the store is opened, its config read and its state recovered, as
`fntree status` and `fntree restart` do, and `fntree check` is run. Each flip
must either be reported (a JobStoreError naming the file, and an error from
check) or leave every value exactly as it was.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import fntree
from fntree.checksum import HEADER
from fntree.errors import JobStoreError
from fntree.runtime.check import ERROR, check
from fntree.runtime.store import JobStore

TESTS = str(Path(__file__).parent)
# Files no result depends on: recovery never reads them (docs/jobstore.md).
NOT_READ = {"leader.lock", "events.log", "events.log.gz", "events.1.log.gz"}


def _make_store(root: Path, n: int, env: dict[str, str]) -> Path:
    store = root / "jobstore"
    code = f"import fntree, workflows as wf; fntree.run(wf.fan({n}), jobstore={str(store)!r})"
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": TESTS, **env},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    return store


@pytest.fixture(scope="module")
def completed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of fan(6) (value 15), compacted every turn."""
    store = _make_store(tmp_path_factory.mktemp("completed"), 6, {"FNTREE_COMPACT_BYTES": "1"})
    assert list((store / "journal").glob("snapshot.*"))
    return store


@pytest.fixture(scope="module")
def torn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of fan(12) whose leader was SIGKILLed half-way through writing a frame."""
    # How many commits a run makes depends on how results batch, so the torn commit is
    # tried from the 7th down until one lands after a snapshot and before the end.
    for commit in (7, 6, 8, 5, 9, 4):
        store = _make_store(tmp_path_factory.mktemp("torn"), 12,
                            {"FNTREE_COMPACT_BYTES": "800",
                             "FNTREE_CRASH_AT": f"journal.torn:{commit}"})
        replay = JobStore.open(store).replay(repair=False)
        if replay.torn and replay.base and not replay.state.finished:
            return store
    raise AssertionError("no run was cut mid-frame after a snapshot")


def _positions(size: int) -> list[int]:
    """Offsets to flip: the header bytes, the last bytes, and a spread over the rest."""
    spread = {size * k // 48 for k in range(48)} if size else set()
    return sorted({*range(min(size, HEADER.size + 4)), *range(max(0, size - 8), size), *spread})


def _frame_starts(path: Path) -> list[int]:
    """Offsets of the frame headers in journal segment `path`, and the first bytes after."""
    data, starts, offset = path.read_bytes(), [], 0
    while offset + HEADER.size <= len(data):
        starts.append(offset)
        offset += HEADER.size + int.from_bytes(data[offset + 4:offset + 12], "little")
    return [s + i for s in starts for i in (0, 4, 12, 16, 20, 21)]


def _view(store: Path) -> tuple[bytes, bytes, str]:
    """What the files decide: the recovered state, the config, the store's identity."""
    opened = JobStore.open(store)
    state = opened.replay(repair=False).state
    return pickle.dumps(state), pickle.dumps(opened.config()), opened.store_id


def _flip_all(store: Path) -> Counter[str]:
    """Flip bits across every file of `store`; return the counts tried, detected, harmless."""
    baseline = _view(store)
    counts: Counter[str] = Counter()
    files = sorted(p for p in store.rglob("*") if p.is_file())
    for path in files:
        size = path.stat().st_size
        positions = set(_positions(size))
        if path.suffix == ".log" and path.parent.name == "journal":
            positions.update(p for p in _frame_starts(path) if p < size)
        for position in sorted(positions):
            outcome = _flip_one(store, path, position, baseline)
            counts["tried"] += 1
            counts[outcome] += 1
            counts[f"{outcome} {_kind(path)}"] += 1
    return counts


def _kind(path: Path) -> str:
    name = path.name
    return "journal segment" if name.endswith(".log") and name[0].isdigit() else \
        "snapshot" if name.startswith("snapshot.") else name


def _flip_one(store: Path, path: Path, position: int, baseline: tuple[bytes, bytes, str]) -> str:
    with open(path, "r+b") as f:
        f.seek(position)
        original = f.read(1)[0]
        f.seek(position)
        f.write(bytes([original ^ (1 << (position * 5 % 8))]))
    try:
        try:
            view = _view(store)
        except JobStoreError as exc:
            assert path.name in str(exc), f"flip at {path.name}:{position}: {exc}"
            errors = [f.text for f in check(store) if f.level == ERROR]
            assert any(path.name in e for e in errors), f"check missed {path.name}:{position}"
            return "detected"
        assert view == baseline, f"a flip at {path.name}:{position} changed a value silently"
        assert path.name in NOT_READ or not [f for f in check(store) if f.level == ERROR]
        return "harmless"
    finally:
        with open(path, "r+b") as f:
            f.seek(position)
            f.write(bytes([original]))


def test_every_flip_in_a_completed_store_is_detected_or_harmless(completed: Path) -> None:
    """In a finished run's store, a flipped bit is reported or leaves every value as it was."""
    counts = _flip_all(completed)
    print(f"\ncompleted store: {dict(sorted(counts.items()))}")
    assert counts["tried"] == counts["detected"] + counts["harmless"]
    # A finished run is compacted at its end: its value is in the snapshot.
    assert counts["detected snapshot"] and counts["detected config.pkl"]
    assert counts["detected fntree.json"]
    assert fntree.restart(completed) == 15


def test_every_flip_in_a_mid_run_store_is_detected_or_harmless(torn: Path) -> None:
    """In a store killed mid-write, a flipped bit is reported or leaves every value as it was."""
    counts = _flip_all(torn)
    print(f"\nmid-run store: {dict(sorted(counts.items()))}")
    assert counts["tried"] == counts["detected"] + counts["harmless"]
    assert counts["detected snapshot"] and counts["detected journal segment"]
    assert counts["harmless journal segment"], "flips in the torn tail's payload change nothing"
    assert counts["detected journal segment"] > 20, "complete frames precede the torn one"


def test_a_flipped_snapshot_bit_stops_a_restart_and_check(torn: Path, tmp_path: Path) -> None:
    """A restart refuses a snapshot with a flipped bit, naming it; `fntree check` says so too."""
    copy = tmp_path / "copy"
    shutil.copytree(torn, copy)
    (snapshot,) = (copy / "journal").glob("snapshot.*")
    data = bytearray(snapshot.read_bytes())
    data[len(data) // 2] ^= 0x04
    snapshot.write_bytes(bytes(data))
    with pytest.raises(JobStoreError, match=rf"{snapshot.name} is damaged"):
        fntree.restart(copy)
    out = subprocess.run([sys.executable, "-m", "fntree", "check", str(copy)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and snapshot.name in out.stdout


def test_a_flip_in_the_torn_tail_still_restarts_to_the_exact_value(torn: Path,
                                                                 tmp_path: Path) -> None:
    """A bit flipped inside the torn tail's payload is cut with it; the restart is exact."""
    copy = tmp_path / "copy"
    shutil.copytree(torn, copy)
    replay = JobStore.open(copy).replay(repair=False)
    segment = copy / "journal" / f"{replay.segment}.log"
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0x10
    segment.write_bytes(bytes(data))
    assert fntree.restart(copy) == 66
