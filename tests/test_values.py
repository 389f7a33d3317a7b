"""Values out of line: stored once in objects/, by reference, never in the leader, collected."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import value_workflows as vw
from processes import processes_mentioning, wait_for
from test_slurm import _slurm_missing

import fntree
from fntree.errors import JobStoreError
from fntree.runtime.check import ERROR, check
from fntree.runtime.objects import INLINE_LIMIT, DamagedObject, ObjectStore
from fntree.runtime.store import JobStore

TESTS = str(Path(__file__).parent)
BIG = 3 * INLINE_LIMIT


def _objects(store: Path) -> list[str]:
    try:
        return sorted(os.listdir(store / "objects"))
    except FileNotFoundError:
        return []


def _leader(store: Path, call: str, out: Path | None = None) -> subprocess.Popen[bytes]:
    """A leader in its own process running `call`; it writes the value's repr and its peak
    RSS (KiB) as JSON to `out`."""
    # VmHWM, not ru_maxrss: that keeps the peak of the forked parent (pytest) from before exec
    code = (f"import fntree, json, value_workflows as vw\n"
            f"value = fntree.run({call}, jobstore={str(store)!r})\n"
            f"rss = next(int(line.split()[1]) for line in open('/proc/self/status')\n"
            f"           if line.startswith('VmHWM:'))\n"
            f"if {str(out)!r} != 'None':\n"
            f"    open({str(out)!r}, 'w').write(json.dumps([repr(value), rss]))\n")
    return subprocess.Popen([sys.executable, "-c", code],
                            env={**os.environ, "PYTHONPATH": TESTS},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _sound(store: Path) -> list[str]:
    """The store's findings, after asserting none is an error."""
    findings = check(store)
    errors = [f.text for f in findings if f.level == ERROR]
    assert not errors, errors
    return [f.text for f in findings]


def test_a_large_argument_and_a_large_value_round_trip_exactly(store: Path) -> None:
    """A root argument and a returned value longer than the inline limit come back exactly."""
    data = vw.blob(BIG, 1)
    assert fntree.run(vw.echo(data), jobstore=store) == data
    assert len(_objects(store)) == 2  # the root's arguments (kept for a re-run) and the value
    assert fntree.restart(store) == data
    assert _sound(store) == []


def test_the_values_journaled_are_references_only(store: Path) -> None:
    """The journal and the snapshot hold references: the store's pickles are small."""
    fntree.run(vw.pipeline(4 << 20), jobstore=store)
    journal = sum(p.stat().st_size for p in (store / "journal").iterdir())
    assert journal < INLINE_LIMIT, journal


def test_the_leader_does_not_hold_large_values(tmp_path: Path) -> None:
    """Four 64 MiB arguments pass between workers while the leader stays under 100 MiB."""
    out = tmp_path / "out.json"
    leader = _leader(tmp_path / "jobstore", f"vw.pipeline({128 << 20})", out)
    _, stderr = leader.communicate(timeout=600)
    assert leader.returncode == 0, stderr.decode()[-2000:]
    value, rss_kib = json.loads(out.read_text())
    assert value == repr(vw.digest(vw.blob(128 << 20, 7)))
    assert rss_kib < 100 << 10, f"leader peak RSS {rss_kib} KiB for a 128 MiB value"


def test_identical_values_are_stored_once(store: Path) -> None:
    """Two jobs returning the same long value leave one object."""
    assert fntree.run(vw.twins(BIG), jobstore=store) == [vw.blob(BIG, 3)] * 2
    assert len(_objects(store)) == 1


def test_objects_are_collected_once_no_live_job_refers_to_them(store: Path) -> None:
    """A value consumed by the job that took it is gone from objects/ when the run ends."""
    assert fntree.run(vw.pipeline(BIG), jobstore=store) == vw.digest(vw.blob(BIG, 7))
    assert _objects(store) == []
    assert _sound(store) == []


def test_orphans_are_explained_by_check_and_collected_by_the_next_leader(store: Path) -> None:
    """An object and a temp file no job refers to are collectable notes for check, and a
    restart's leader removes them before it issues anything."""
    leader = _leader(store, "vw.kill_target(1, '/nonexistent/marker')")
    leader.wait(timeout=300)  # the target fails (its marker cannot be written)
    assert leader.returncode != 0
    (store / "objects").mkdir(mode=0o700, exist_ok=True)
    stray = store / "objects" / ("ef" * 32)
    torn = store / "objects" / f".{'cd' * 32}.1.00000000.tmp"
    for path in (stray, torn):
        path.write_bytes(b"z")
        path.chmod(0o600)
        os.utime(path, (time.time() - 10, time.time() - 10))
    notes = [n for n in _sound(store) if "objects/" in n]
    assert len(notes) == 2 and all("collectable" in n for n in notes), notes
    with pytest.raises(fntree.WorkflowFailed):
        fntree.restart(store)
    assert _objects(store) == []


def _kill_during_write(store: Path, marker: Path, whom: str) -> subprocess.Popen[bytes]:
    """Start a run whose job writes a 192 MiB value; SIGKILL `whom` (the leader or the worker)
    while that value's temp file is being written."""
    leader = _leader(store, f"vw.kill_target({192 << 20}, {str(marker)!r})")
    objects = store / "objects"
    wait_for(lambda: (marker.exists() and any(n.startswith(".") for n in _objects(store)))
             or leader.poll() is not None, timeout=300)
    assert leader.poll() is None, "the run ended before the kill"
    assert any(n.startswith(".") for n in os.listdir(objects))
    os.kill(leader.pid if whom == "leader" else int(marker.read_text()), signal.SIGKILL)
    return leader


def test_a_worker_killed_writing_a_value_is_retried_and_leaves_no_orphan(store: Path,
                                                                         tmp_path: Path) -> None:
    """SIGKILL of the worker mid-write: the job runs again, the value is exact, check is sound
    and nothing is left in objects/."""
    leader = _kill_during_write(store, tmp_path / "marker", "worker")
    _, stderr = leader.communicate(timeout=600)
    assert leader.returncode == 0, stderr.decode()[-2000:]
    assert fntree.restart(store) == vw.digest(vw.blob(192 << 20, 11))
    assert _sound(store) == []
    assert _objects(store) == []


def test_a_leader_killed_during_a_value_write_restarts_to_the_exact_value(
        store: Path, tmp_path: Path) -> None:
    """SIGKILL of the leader mid-write: check explains every leftover, the restart gives the
    exact value and collects them."""
    leader = _kill_during_write(store, tmp_path / "marker", "leader")
    leader.wait(timeout=60)
    wait_for(lambda: not processes_mentioning(store), timeout=120)  # its workers are gone
    for note in _sound(store):
        assert "collectable" in note or "torn" in note or "temp dir" in note, note
    assert fntree.restart(store) == vw.digest(vw.blob(192 << 20, 11))
    assert _sound(store) == []
    assert _objects(store) == []


def test_a_flipped_bit_in_an_object_is_detected(store: Path) -> None:
    """A flipped bit in a live object is damage for check and an error, never a value."""
    fntree.run(vw.make(BIG, 5), jobstore=store)
    (name,) = _objects(store)
    path = store / "objects" / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    errors = [f.text for f in check(store) if f.level == ERROR]
    assert len(errors) == 1 and name in errors[0] and "restore it" in errors[0], errors
    with pytest.raises(DamagedObject, match="damaged"):
        fntree.restart(store)


def test_a_missing_object_is_named_with_the_remedy(store: Path) -> None:
    """A live object that is gone is damage for check, naming it and what to do."""
    fntree.run(vw.make(BIG, 6), jobstore=store)
    (name,) = _objects(store)
    (store / "objects" / name).unlink()
    errors = [f.text for f in check(store) if f.level == ERROR]
    assert len(errors) == 1 and name in errors[0] and "new job store" in errors[0], errors
    with pytest.raises(DamagedObject, match="missing"):
        fntree.restart(store)


def test_an_object_others_could_write_refuses_the_store(store: Path) -> None:
    """objects/ holds pickles: an object writable by others makes the store refused."""
    fntree.run(vw.make(BIG, 8), jobstore=store)
    (name,) = _objects(store)
    (store / "objects" / name).chmod(0o666)
    with pytest.raises(JobStoreError, match=name):
        JobStore.open(store)


def test_objects_are_owner_only(store: Path) -> None:
    """The objects directory is 0700 and each object 0600, under a umask of 000."""
    old = os.umask(0)
    try:
        fntree.run(vw.make(BIG, 9), jobstore=store)
    finally:
        os.umask(old)
    assert (store / "objects").stat().st_mode & 0o777 == 0o700
    (name,) = _objects(store)
    assert (store / "objects" / name).stat().st_mode & 0o777 == 0o600


def test_large_values_are_cached_across_runs(tmp_path: Path) -> None:
    """A pure target's long value, and a chain's closing list of them, come from the cache in
    a new store, exactly."""
    cache = tmp_path / "cache"
    first = fntree.run(vw.pure_pair(BIG), jobstore=tmp_path / "one", cache=cache)
    assert first == [vw.blob(BIG, 21), vw.blob(BIG, 22)]
    shutil.rmtree(tmp_path / "one")  # the cache keeps its own copies
    again = fntree.run(vw.pure_pair(BIG), jobstore=tmp_path / "two", cache=cache)
    assert again == first
    assert _sound(tmp_path / "two") == []


def test_values_out_of_line_on_slurm(store: Path) -> None:
    """On Slurm, workers on the nodes write and read the store's objects directly: a long
    value passes from one job to another and back to the caller exactly, and only the
    run's value is left."""
    reason = _slurm_missing()
    if reason is not None:
        if os.environ.get("FNTREE_REQUIRE_SLURM"):
            pytest.fail(f"FNTREE_REQUIRE_SLURM is set but Slurm is unusable: {reason}")
        pytest.skip(f"no Slurm reachable: {reason}")
    size = 4 << 20
    assert fntree.run(vw.relay(size), jobstore=store, batch_system="slurm") == vw.blob(size, 4)
    assert len(_objects(store)) == 1
    assert _sound(store) == []


def test_a_collection_keeps_live_objects_and_those_written_since_its_cutoff(
        tmp_path: Path) -> None:
    """collect removes only orphans touched before its cutoff; storing a value again touches
    it, so a value a running job has just stored again is kept."""
    objects = ObjectStore(tmp_path / "objects")
    live, old, again = (objects.put(vw.blob(BIG, k)) for k in (1, 2, 3))
    past = time.time() - 60
    for ref in (live, old, again):
        os.utime(objects.path(ref), (past, past))
    cutoff = time.time() - 30
    assert objects.put(vw.blob(BIG, 3)) == again  # stored again by a job running now
    assert objects.collect({live.digest}, cutoff) == (1, old.size)
    assert sorted(_objects(tmp_path)) == sorted([live.name, again.name])
