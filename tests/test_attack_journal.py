"""The journal of a store that compacted while running, attacked at rest between a kill and a
restart: damaged, deleted, or replaced by another store's files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from processes import kill_run, wait_for, worker_pids

from fntree.runtime.check import ERROR, check
from fntree.runtime.journal import read_records
from fntree.runtime.meta import meta_bytes
from fntree.runtime.records import R_SEGMENT
from fntree.runtime.store import JobStore

TESTS = str(Path(__file__).parent)


def _killed_store(store: Path) -> None:
    """Run `naps(300)` in `store`, compacting every few commits, and SIGKILL its leader and
    workers once a compaction has happened and jobs completed after it."""
    code = ("import fntree, attack_workflows as aw\n"
            f"fntree.run(aw.naps(300), jobstore={str(store)!r})\n")
    env = {**os.environ, "PYTHONPATH": TESTS, "FNTREE_COMPACT_BYTES": "2000"}
    leader = subprocess.Popen([sys.executable, "-c", code], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = store / "journal"
    try:
        wait_for(lambda: any(p.name.startswith("snapshot.") for p in journal.glob("*"))
                 and _length(_segment_after_snapshot(store)) > 1000, timeout=240)
    finally:
        kill_run(leader, store)


def _length(path: Path) -> int:
    """The file's length; 0 while it is not there (a compaction may be between its steps)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _segment_after_snapshot(store: Path) -> Path:
    numbers = [int(p.name.split(".")[1]) for p in (store / "journal").glob("snapshot.*")]
    path = store / "journal" / f"{max(numbers)}.log"
    return path if path.exists() else store / "journal" / "missing"


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two stores of the same workflow (so the same job ids), each killed after compacting."""
    base = tmp_path_factory.mktemp("compacted")
    ours, theirs = base / "ours", base / "theirs"
    _killed_store(ours)
    _killed_store(theirs)
    return ours, theirs


def _copy(store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(store, copy, symlinks=True)
    return copy


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _snapshot(store: Path) -> Path:
    return max((store / "journal").glob("snapshot.*"), key=lambda p: int(p.name.split(".")[1]))


@pytest.mark.parametrize("damage", ["snapshot flipped", "snapshot cut", "segment flipped"])
def test_damage_to_a_compacted_journal_is_an_error_and_restart_refuses(
        stores: tuple[Path, Path], tmp_path: Path, damage: str) -> None:
    """A flipped bit in the newest snapshot or in the segment after it, or a snapshot cut short,
    is an error for `fntree check`, and `fntree restart` refuses it with the remedy (exit 2,
    no traceback), running nothing."""
    store = _copy(stores[0], tmp_path)
    snapshot, segment = _snapshot(store), _segment_after_snapshot(store)
    if damage == "snapshot flipped":
        _flip(snapshot, snapshot.stat().st_size // 2)
    elif damage == "snapshot cut":
        os.truncate(snapshot, snapshot.stat().st_size // 2)
    else:
        _flip(segment, 40)
    errors = [f.text for f in check(store) if f.level == ERROR]
    assert errors and "damaged" in errors[0], errors
    done = subprocess.run([sys.executable, "-m", "fntree", "restart", str(store),
                           "--no-progress"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": TESTS})
    assert done.returncode == 2 and "restore" in done.stderr.lower(), done.stderr
    assert "Traceback" not in done.stderr and not worker_pids(store)


def test_a_deleted_segment_after_the_snapshot_is_an_error(stores: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    """Deleting the segment after the newest snapshot (whose completions a restart would run
    again) is an error for `fntree check`, not a sound store, and `fntree restart` refuses."""
    store = _copy(stores[0], tmp_path)
    segment = _segment_after_snapshot(store)
    segment.unlink()
    errors = [f.text for f in check(store) if f.level == ERROR]
    assert errors and f"journal/{segment.name} is missing" in errors[0], errors
    done = subprocess.run([sys.executable, "-m", "fntree", "restart", str(store),
                           "--no-progress"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": TESTS})
    assert done.returncode == 2 and "restore" in done.stderr.lower(), done.stderr
    assert "Traceback" not in done.stderr and not segment.exists()


@pytest.mark.parametrize("foreign", ["segment", "snapshot"])
def test_another_stores_journal_file_is_detected(stores: tuple[Path, Path], tmp_path: Path,
                                                 foreign: str) -> None:
    """The segment or snapshot of another store of the same workflow, put in place of this
    store's, is an error for `fntree check` (it replayed as this store's: the completions this
    store recorded were lost, to be run again)."""
    store = _copy(stores[0], tmp_path)
    ours = _segment_after_snapshot(store) if foreign == "segment" else _snapshot(store)
    theirs = stores[1] / "journal" / ours.name
    if not theirs.exists():
        pytest.skip(f"the other store has no {ours.name}")
    shutil.copy(theirs, ours)
    errors = [f.text for f in check(store) if f.level == ERROR]
    assert errors and "is not this job store's" in errors[0], errors


def test_a_stray_newer_snapshot_is_an_error(stores: tuple[Path, Path], tmp_path: Path) -> None:
    """A copy of the newest snapshot under the next number (an edit, a botched restore) is an
    error for `fntree check`, not a note that the next leader removes the segment before it."""
    store = _copy(stores[0], tmp_path)
    snapshot = _snapshot(store)
    number = int(snapshot.name.split(".")[1])
    shutil.copy(snapshot, snapshot.with_name(f"snapshot.{number + 1}"))
    errors = [f.text for f in check(store) if f.level == ERROR]
    assert errors and f"holds this store's snapshot snapshot.{number} " in errors[0], errors


def test_a_copy_keeps_its_lineage_and_a_store_without_one_is_not_checked(
        stores: tuple[Path, Path], tmp_path: Path) -> None:
    """A copied store gets its own store_id but keeps the lineage its files name, so it is
    sound; a store made before lineages (none in fntree.json) opens and is sound too."""
    store = _copy(stores[0], tmp_path)
    assert not [f for f in check(store) if f.level == ERROR]
    meta = json.loads((store / "fntree.json").read_text())
    original = json.loads((stores[0] / "fntree.json").read_text())
    assert meta["store_id"] != original["store_id"] and meta["lineage"] == original["lineage"]
    del meta["lineage"]
    (store / "fntree.json").write_bytes(meta_bytes(meta))
    assert not [f for f in check(store) if f.level == ERROR]


def test_a_segment_left_empty_by_a_kill_still_names_its_store_once_written(
        tmp_path: Path) -> None:
    """A leader killed at `compact.segment` leaves an empty segment after the snapshot; the
    next leader's first commit there opens with the store's lineage and the segment's number."""
    store = tmp_path / "store"
    code = ("import fntree, workflows as wf\n"
            f"fntree.run(wf.wide(4, 30), jobstore={str(store)!r})\n")
    env = {**os.environ, "PYTHONPATH": TESTS, "FNTREE_COMPACT_BYTES": "1",
           "FNTREE_COMPACT_RATIO": "0", "FNTREE_CRASH_AT": "compact.segment:2"}
    leader = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            timeout=300)
    assert leader.returncode == -signal.SIGKILL, leader.stderr.decode()
    segment = _segment_after_snapshot(store)
    assert segment.stat().st_size == 0
    jobstore = JobStore.open(store)
    jobstore.lock()
    _, number, good = jobstore.recover(repair=True)
    assert (number, good) == (int(segment.stem), 0)
    journal = jobstore.open_journal(number, good)  # as the next leader does
    journal.commit()
    journal.close()
    jobstore.unlock()
    lineage = json.loads((store / "fntree.json").read_text())["lineage"]
    records, _, _ = read_records(segment)
    assert records and records[0][:3] == (R_SEGMENT, lineage, number), records
