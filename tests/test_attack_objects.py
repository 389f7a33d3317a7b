"""Damaged, replaced and planted objects (values out of line), in a job store and in a cache."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import value_workflows as vw
from processes import wait_for

import fntree
from fntree.runtime.cache import Cache, prune
from fntree.runtime.check import ERROR, check
from fntree.runtime.objects import (
    INLINE_LIMIT,
    DamagedObject,
    ObjectRef,
    ObjectStore,
    collect_now,
)
from fntree.runtime.state import RunState

TESTS = str(Path(__file__).parent)
BIG = 3 * INLINE_LIMIT


def _flip(path: Path, offset: int = 1000) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 1]))


def _ref(path: Path) -> ObjectRef:
    return ObjectRef(bytes.fromhex(path.name), path.stat().st_size)


def _run_pure(store: Path, cache: Path, seed: int = 5) -> subprocess.CompletedProcess[str]:
    """A run, in its own process, of a pure job making a long value that another job reads."""
    code = (f"import fntree, value_workflows as vw\n"
            f"print(fntree.run(vw.consume(vw.pure_make({BIG}, {seed})), "
            f"jobstore={str(store)!r}, cache={str(cache)!r}))\n")
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": TESTS},
                          capture_output=True, text=True, timeout=300)


def test_a_damaged_object_in_the_cache_is_a_miss_and_the_value_is_computed_again(
        tmp_path: Path) -> None:
    """A flipped bit in a cached long value makes the job run again, and repairs the cache."""
    cache = tmp_path / "cache"
    first = _run_pure(tmp_path / "s1", cache)
    assert first.returncode == 0, first.stderr
    (obj,) = (cache / "objects").iterdir()
    _flip(obj)
    second = _run_pure(tmp_path / "s2", cache)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == vw.digest(vw.blob(BIG, 5))
    assert "damaged" in second.stderr
    assert ObjectStore(cache / "objects").intact(_ref(obj))
    third = _run_pure(tmp_path / "s3", cache)
    assert third.returncode == 0 and "damaged" not in third.stderr, third.stderr
    assert third.stdout == second.stdout


def test_a_damaged_stored_object_is_written_again_when_its_value_is_made_again(
        tmp_path: Path) -> None:
    """Storing a value whose object is there but damaged replaces it, never keeps the damage."""
    objects = ObjectStore(tmp_path / "objects")
    data = vw.blob(BIG, 9)
    ref = objects.put(data)
    _flip(objects.path(ref))
    assert objects.put(data) == ref
    assert objects.get(ref) == data
    long = vw.blob(5 << 20, 9)  # hashed while written: the other path
    ref = objects.put(long)
    _flip(objects.path(ref), 4 << 20)
    assert objects.put(long) == ref
    assert objects.get(ref) == long


@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink", "empty"])
def test_an_object_replaced_by_something_else_is_a_damaged_object(tmp_path: Path,
                                                                   kind: str) -> None:
    """An object replaced by a directory, a FIFO, a symlink or nothing is DamagedObject, at
    once (never a hang on a FIFO, never a raw OSError), and storing the value repairs it."""
    objects = ObjectStore(tmp_path / "objects")
    data = vw.blob(BIG, 2)
    ref = objects.put(data)
    path = objects.path(ref)
    path.unlink()
    elsewhere = tmp_path / "planted"
    elsewhere.write_bytes(data)
    {"directory": path.mkdir, "fifo": lambda: os.mkfifo(path),
     "symlink": lambda: path.symlink_to(elsewhere), "empty": lambda: path.write_bytes(b"")}[kind]()
    with pytest.raises(DamagedObject, match=r"missing or unreadable|damaged"):
        objects.get(ref)
    if kind != "directory":  # a directory is not replaced by a rename: it stays an error
        assert objects.put(data) == ref
        assert objects.get(ref) == data


def test_check_reports_a_live_object_replaced_by_a_directory(store: Path) -> None:
    """`fntree check` reports a live object replaced by a directory as an error, no traceback."""
    marker = store.parent / "marker"
    code = (f"import fntree, attack_workflows as aw\n"
            f"fntree.run(aw.made_then_held({BIG}, {str(marker)!r}), jobstore={str(store)!r})\n")
    leader = subprocess.Popen([sys.executable, "-c", code],
                              env={**os.environ, "PYTHONPATH": TESTS},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(marker.exists, timeout=120)
    finally:
        leader.kill()
        leader.wait()
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(marker.read_text()), signal.SIGKILL)
    (obj,) = (store / "objects").glob("[0-9a-f]" * 64)
    obj.unlink()
    obj.mkdir()
    errors = [f.text for f in check(store) if f.level == ERROR]
    assert any(obj.name in text and "damaged" in text for text in errors), errors


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (root only), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs",
                                            str(disk)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_value_that_cannot_be_stored_fails_its_job_and_the_run_continues_later(
        small_disk: Path) -> None:
    """A long value on a full disk fails its job with the directory named (never a success
    carrying the value inline into the journal); with room made, a restart gives it exactly."""
    store, size = small_disk / "store", 3_000_000
    with pytest.raises(fntree.WorkflowFailed, match=r"cannot store a value of 3,000,0\d\d bytes "
                       r"in .*objects \(No space left on device\)"):
        fntree.run(vw.pipeline(size), jobstore=store)
    assert sum(p.stat().st_size for p in (store / "journal").iterdir()) < INLINE_LIMIT
    subprocess.run(["mount", "-o", "remount,size=32m", str(small_disk)], check=True)
    assert fntree.restart(store) == vw.digest(vw.blob(size, 7))


def test_prune_leaves_what_is_not_a_cache_file_and_removes_the_rest(tmp_path: Path) -> None:
    """A directory where an old entry or object would be is left with a warning, and the old
    entries beside it are still removed (a prune never stops at it)."""
    cache = Cache.open(tmp_path / "c")
    for k in range(3):
        cache.put(bytes([k]) * 32, "t", b"v")
    stray = cache.path(bytes([9]) * 32)
    stray.mkdir(parents=True)
    (cache.root / "objects").mkdir()
    odd_object = cache.root / "objects" / ("b" * 64)
    odd_object.mkdir()
    old = time.time() - 100
    for path in (*(cache.path(bytes([k]) * 32) for k in range(2)), stray, odd_object):
        os.utime(path, (old, old))
    assert prune(cache, 50) == (2, 2 * cache.path(bytes([2]) * 32).stat().st_size)
    assert stray.is_dir() and odd_object.is_dir()


def test_collection_leaves_a_directory_in_objects_and_removes_the_orphans(
        tmp_path: Path) -> None:
    """A directory in objects/ is left with a warning; the orphans beside it are still
    collected (a collection never stops at it)."""
    objects = ObjectStore(tmp_path / "objects")
    refs = [objects.put(vw.blob(BIG, seed)) for seed in range(3)]
    odd = tmp_path / "objects" / ("0" * 64)
    odd.mkdir()
    old = time.time() - 1000
    for path in (*map(objects.path, refs), odd):
        os.utime(path, (old, old))
    assert collect_now(objects, RunState()) == (3, 3 * BIG)
    assert [p.name for p in (tmp_path / "objects").iterdir()] == [odd.name]


def test_a_cache_entry_moved_to_another_keys_name_is_a_miss(tmp_path: Path) -> None:
    """An entry copied over another key's entry (a restore to the wrong name, a bit flipped in
    a name) is a miss with a warning, never the other job's value; entries written before
    entries held their key are still read."""
    cache = Cache.open(tmp_path / "c")
    one, two = b"\x01" * 32, b"\x02" * 32
    cache.put(one, "t", b"value of one")
    cache.put(two, "t", b"value of two")
    shutil.copyfile(cache.path(one), cache.path(two))
    found, value, warning = cache.get(two)
    assert not found and value is None and "another key" in warning
    assert cache.get(one)[:2] == (True, b"value of one")
    label = b"t"
    rest = struct.pack("<I", len(label)) + label + pickle.dumps(b"legacy", 5)
    cache.path(two).write_bytes(b"fntreeC1" + hashlib.blake2b(rest, digest_size=32).digest()
                                + rest)
    assert cache.get(two)[:2] == (True, b"legacy")
