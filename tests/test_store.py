"""The job store's recovery: format, lost files, damage never cut, readers beside a compaction."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import workflows as wf
from processes import wait_for

import fntree
from fntree.cli import main
from fntree.errors import JobStoreError
from fntree.runtime.check import ERROR, check
from fntree.runtime.meta import meta_bytes
from fntree.runtime.store import JobStore

TESTS = str(Path(__file__).parent)


def _leader(store: Path, call: str, **env: str) -> subprocess.Popen[bytes]:
    code = f"import fntree, workflows as wf; fntree.run({call}, jobstore={str(store)!r})"
    return subprocess.Popen([sys.executable, "-c", code],
                            env={**os.environ, "PYTHONPATH": TESTS, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@fntree.target
def sized(kib: int) -> bytes:
    """A value of `kib` KiB that a test can check byte for byte."""
    return bytes(range(256)) * (kib << 2)


def test_a_leader_killed_writing_a_large_value_opens_at_once_and_finishes(
        store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SIGKILL mid-write of the largest value the journal holds (longer ones are stored out
    of line): status opens the store, restart gives the value."""
    # Which commit holds the value depends on how the run's records batch, which varies
    # from run to run: each commit number is tried up to three times.
    for k in (*range(2, 10),) * 3:
        leader = _leader(store, "__import__('test_store').sized(60)",
                         FNTREE_CRASH_AT=f"journal.torn:{k}")
        leader.wait(timeout=300)
        if JobStore.open(store).replay(repair=False).torn >= 30 << 10:
            break
        shutil.rmtree(store)
    else:
        pytest.fail("no crash landed in the frame of the value")
    assert main(["status", str(store)]) == 0
    assert "torn record" in check_output(store, capsys)
    assert fntree.restart(store) == bytes(range(256)) * (60 << 2)


def check_output(store: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["check", str(store)]) == 0
    return capsys.readouterr().out


def test_a_format_1_store_is_refused_naming_both_formats(store: Path) -> None:
    """A store of format 1 (no checksums) is refused with the formats and what to do."""
    fntree.run(wf.leaf(1), jobstore=store)
    meta = json.loads((store / "fntree.json").read_text())
    del meta["crc32"]
    meta["format"] = 1
    (store / "fntree.json").write_text(json.dumps(meta))
    with pytest.raises(JobStoreError, match=r"earlier fntree \(store format 1.*formats 2 to 3"):
        fntree.restart(store)


def _set_format(store: Path, number: int) -> None:
    meta = json.loads((store / "fntree.json").read_text())
    (store / "fntree.json").write_bytes(meta_bytes({**meta, "format": number}))


def test_a_format_2_store_is_read_and_marked_3_before_a_leader_writes_to_it(store: Path) -> None:
    """A store of format 2 (before DONE records kept pickled or flat, and BEAR) is checked and
    restarted as before; its leader marks it format 3 first, so that an fntree that reads
    only format 2 says "upgrade" rather than meeting records it does not know."""
    fntree.run(wf.fan(3), jobstore=store)
    _set_format(store, 2)
    assert [f.text for f in check(store) if f.level == ERROR] == []
    assert json.loads((store / "fntree.json").read_text())["format"] == 2  # readers write nothing
    assert fntree.restart(store) == fntree.run(wf.fan(3), jobstore=store.parent / "again")
    assert json.loads((store / "fntree.json").read_text())["format"] == 3


def test_a_store_of_a_newer_format_is_refused_with_upgrade(store: Path) -> None:
    """A store written by a newer fntree is refused, saying to upgrade, and left as it is."""
    fntree.run(wf.leaf(1), jobstore=store)
    _set_format(store, 4)
    before = (store / "fntree.json").read_bytes()
    with pytest.raises(JobStoreError, match=r"newer fntree \(store format 4.*upgrade fntree"):
        fntree.restart(store)
    assert (store / "fntree.json").read_bytes() == before


def test_a_store_that_lost_its_snapshot_is_kept_and_told_what_is_missing(store: Path) -> None:
    """A missing snapshot is named, the record called incomplete, and the store left as it is."""
    fntree.run(wf.fan(3), jobstore=store)
    (snapshot,) = (store / "journal").glob("snapshot.*")
    snapshot.unlink()
    before = sorted(p.name for p in store.rglob("*"))
    with pytest.raises(JobStoreError) as info:
        fntree.restart(store)
    text = str(info.value)
    assert f"journal/{snapshot.name} is missing" in text and "incomplete" in text
    assert "remove it" not in text and "run again" not in text
    assert sorted(p.name for p in store.rglob("*")) == before
    assert any(snapshot.name in f.text for f in check(store) if f.level == ERROR)


def test_a_store_that_lost_its_config_is_told_so(store: Path) -> None:
    """A missing config.pkl beside a journal with records is not called an interrupted creation."""
    fntree.run(wf.fan(3), jobstore=store)
    (store / "config.pkl").unlink()
    with pytest.raises(JobStoreError, match=r"config\.pkl is missing although the journal"):
        fntree.restart(store)


def test_a_flipped_bit_in_an_acted_on_last_frame_is_damage_and_not_cut(store: Path) -> None:
    """A complete last frame with a flipped bit is reported with its offset, and never cut."""
    leader = _leader(store, "wf.fan(4)", FNTREE_CRASH_AT="leader.commit:3")
    assert leader.wait(timeout=120) == -signal.SIGKILL
    segment = max((store / "journal").glob("*.log"), key=lambda p: int(p.stem))
    data = bytearray(segment.read_bytes())
    data[-5] ^= 0x02
    segment.write_bytes(bytes(data))
    with pytest.raises(JobStoreError, match=rf"{segment.name} is damaged at byte \d+.*truncate"):
        fntree.restart(store)
    assert segment.read_bytes() == bytes(data)


def test_readers_beside_a_compaction_every_turn_see_a_sound_store(
        store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check and status during compactions at every turn never report damage or crash."""
    leader = _leader(store, f"wf.slow_fan(100, 0.05, {str(tmp_path / 'record')!r})",
                     FNTREE_COMPACT_BYTES="1")
    wait_for((store / "events.log").exists, timeout=120)
    tries, bases = 0, set()
    try:
        while leader.poll() is None:
            findings = check(store)
            assert not [f for f in findings if f.level == ERROR], findings
            for _ in range(5):
                bases.add(JobStore.open(store).replay(repair=False).base)
            assert main(["status", str(store)]) in (0, 1)
            out, err = capsys.readouterr()
            assert "damaged" not in out + err and "Traceback" not in out + err
            tries += 7
    finally:
        leader.kill()
    assert leader.wait() == 0
    print(f"\n{tries} reads beside {len(bases)} distinct snapshots")
    assert tries >= 5 and len(bases) >= 3
