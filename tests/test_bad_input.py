"""Bad input gets a clear error that says what is wrong and what to do, and loses nothing."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import workflows as wf

import fntree
from fntree.runtime.journal import encode
from fntree.runtime.meta import meta_bytes


def test_directory_that_is_not_a_job_store(tmp_path: Path) -> None:
    """A directory without fntree's identity file is refused by restart."""
    (tmp_path / "data").mkdir()
    with pytest.raises(fntree.JobStoreError, match="is not an fntree job store"):
        fntree.restart(tmp_path / "data")


def test_job_store_of_another_program(tmp_path: Path) -> None:
    """A directory whose identity names another program is refused."""
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    (other / "fntree.json").write_text(json.dumps({"program": "snakemake", "format": 1}))
    with pytest.raises(fntree.JobStoreError, match="belongs to another program"):
        fntree.restart(other)


def test_job_store_from_a_newer_fntree(store: Path) -> None:
    """A store written by a newer fntree is refused, naming both formats."""
    fntree.run(wf.leaf(1), jobstore=store)
    meta = json.loads((store / "fntree.json").read_text())
    meta["format"] = 99
    (store / "fntree.json").write_bytes(meta_bytes(meta))
    with pytest.raises(fntree.JobStoreError, match=r"newer fntree \(store format 99"):
        fntree.restart(store)


def test_garbage_in_the_middle_of_the_journal(store: Path) -> None:
    """Damage before later records is detected and named, never silently cut."""
    fntree.run(wf.leaf(1), jobstore=store)
    segment = next((store / "journal").glob("*.log"))
    segment.write_bytes(b"\x00garbage!" + segment.read_bytes() + encode([("more",)]))
    with pytest.raises(fntree.JobStoreError, match=rf"{segment.name} is damaged at byte 0"):
        fntree.restart(store)


def test_truncated_snapshot(store: Path) -> None:
    """A snapshot that does not parse is reported as damage."""
    fntree.run(wf.fan(3), jobstore=store)
    snapshot = next((store / "journal").glob("snapshot.*"))
    snapshot.write_bytes(snapshot.read_bytes()[:20])
    with pytest.raises(fntree.JobStoreError, match=rf"{snapshot.name} is damaged"):
        fntree.restart(store)


def test_two_follow_ons(store: Path) -> None:
    """A target that gives a job two follow-ons fails with a message saying so."""
    with pytest.raises(fntree.WorkflowFailed) as info:
        fntree.run(wf.two_follow_ons(), jobstore=store, retry_count=0)
    assert "at most one follow-on" in info.value.failed[0].message


def test_return_value_that_cannot_be_stored(store: Path) -> None:
    """A value that cannot be serialized names the target and the value's type."""
    with pytest.raises(fntree.WorkflowFailed) as info:
        fntree.run(wf.returns_generator(), jobstore=store, retry_count=0)
    message = info.value.failed[0].message
    assert "returned by target `returns_generator` is a generator" in message


def test_target_whose_module_the_worker_cannot_import(tmp_path: Path) -> None:
    """A target whose module is gone where jobs run fails with what to do about it."""
    module = tmp_path / "vanishing.py"
    module.write_text("import fntree\n@fntree.target\ndef f():\n    return 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import vanishing

        call = vanishing.f()
        module.unlink()
        shutil.rmtree(tmp_path / "__pycache__", ignore_errors=True)
        with pytest.raises(fntree.WorkflowFailed) as info:
            fntree.run(call, jobstore=tmp_path / "store", retry_count=0)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("vanishing", None)
    message = info.value.failed[0].message
    assert "target `f` cannot be loaded in the worker" in message
    assert "No module named 'vanishing'" in message and "PYTHONPATH" in message


def test_memory_no_machine_has(store: Path) -> None:
    """Asking for more memory than the batch system has fails at once, naming both."""
    started = time.monotonic()
    with pytest.raises(fntree.ResourceError, match=r"`enormous` asks for .* 64\.0 TiB"):
        fntree.run(wf.enormous(), jobstore=store)
    assert time.monotonic() - started < 30


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                             str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip()}")


def test_disk_full_then_space_back(tmp_path: Path) -> None:
    """A full disk stops the run with a clear error; once space is back, restart finishes."""
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "2m")
    try:
        store = disk / "store"
        filler = disk / "filler"
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        filler.write_bytes(b"\0" * (free - 96 * 1024))
        with pytest.raises(fntree.JobStoreError, match=r"is full.*free some space.*restart"):
            fntree.run(wf.fan(3000), jobstore=store)
        filler.unlink()
        assert fntree.restart(store) == sum(range(3000))
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_the_leader(tmp_path: Path, signum: int) -> None:
    """Ctrl-C or SIGTERM stops the leader and its workers; restart finishes the run."""
    store = tmp_path / "store"
    record = tmp_path / "record"
    script = tmp_path / "interrupted.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import workflows
        from workflows import slow_fan
    """))
    leader = subprocess.Popen(
        [sys.executable, "-m", "fntree", "run", f"{script}:slow_fan", "6", "0.5", str(record),
         "--jobstore", str(store), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (record.exists() and record.read_text().count("\n") >= 2):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    leader.send_signal(signum)
    _, err = leader.communicate(timeout=30)
    assert leader.returncode == 130
    assert f"fntree restart {store}" in err
    assert fntree.restart(store) == sum(range(6))


def test_store_is_private_and_others_stores_are_refused(store: Path) -> None:
    """A job store is its owner's alone; one writable by others, or owned by another, is refused."""
    fntree.run(wf.leaf(1), jobstore=store)
    assert store.stat().st_mode & 0o777 == 0o700
    store.chmod(0o777)
    with pytest.raises(fntree.JobStoreError, match=r"writable by others.*chmod -R go-w"):
        fntree.restart(store)
    store.chmod(0o700)
    if os.getuid() != 0:
        pytest.skip("only root can give the store to another user")
    os.chown(store, 65534, 65534)
    try:
        with pytest.raises(fntree.JobStoreError, match="belongs to another user"):
            fntree.restart(store)
    finally:
        os.chown(store, 0, 0)


def _options(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    fntree.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("option", [
    "--max-log-mb=nan", "--max-log-mb=0", "--max-log-mb=-1", "--max-log-mb=inf",
    "--max-cpus=nan", "--max-memory=0", "--retry-count=-1", "--max-jobs=0",
    "--fault-kill=2", "--fault-raise=nan", '--slurm-args=--qos="long',
    "--slurm-partition=a b",
])
def test_bad_options_refused_before_a_store_is_made(store: Path, option: str) -> None:
    """A bad option is refused with its name before anything is created or recorded."""
    name = option[2:].partition("=")[0].replace("-", "_")
    with pytest.raises(fntree.FntreeError, match=name):
        fntree.run(wf.leaf(1), jobstore=store, options=_options(option))
    assert not store.exists()


def test_bad_recorded_or_environment_options_refused(store: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad fault seed from the environment, or a bad log level, is a message, not a crash."""
    monkeypatch.setenv("FNTREE_FAULT_SEED", "abc")
    with pytest.raises(fntree.FntreeError,
                       match=r"\$FNTREE_FAULT_SEED = 'abc' must be a whole number"):
        fntree.run(wf.leaf(1), jobstore=store)
    monkeypatch.delenv("FNTREE_FAULT_SEED")
    with pytest.raises(fntree.FntreeError, match="log_level='LOUD' is not a logging level"):
        fntree.run(wf.leaf(1), jobstore=store, log_level="LOUD")
    assert not store.exists()
    assert fntree.run(wf.leaf(2), jobstore=store, log_level="warning") == 2


def test_store_path_under_a_file(tmp_path: Path) -> None:
    """A store path whose parent is a file says so, rather than "already exists"."""
    (tmp_path / "afile").write_text("")
    for path in (tmp_path / "afile" / "store", tmp_path / "afile" / "x" / "store"):
        with pytest.raises(fntree.JobStoreError, match=r"afile is a file, not a directory"):
            fntree.run(wf.leaf(1), jobstore=path)


def test_store_path_that_cannot_be_made(tmp_path: Path) -> None:
    """A store path where no directory can be made (in /proc) is a clear JobStoreError."""
    with pytest.raises(fntree.JobStoreError, match=r"cannot create the job store directory "
                                                   r"/proc/fntree-x .*choose a path"):
        fntree.run(wf.leaf(1), jobstore="/proc/fntree-x")


@pytest.mark.parametrize("inodes", [*range(1, 10), 12, 20, 30])
def test_out_of_inodes_then_inodes_back(tmp_path: Path, inodes: int) -> None:
    """Running out of inodes at any point is a JobStoreError; with inodes back, the run
    is either unmade (and says so) or restarts to the exact value."""
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, f"64m,nr_inodes={inodes}")
    store = disk / "store"
    try:
        try:
            value = fntree.run(wf.fan(300), jobstore=store)
        except fntree.JobStoreError as exc:
            assert "df -i" in str(exc) or "inodes" in str(exc), exc
            subprocess.run(["mount", "-o", "remount,nr_inodes=100000", str(disk)], check=True)
            if not store.exists():
                assert "nothing ran" in str(exc) or "cannot create" in str(exc), exc
                return
            value = fntree.restart(store)
        assert value == sum(range(300))
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_slurm_without_sbatch_refused_before_a_store_is_made(
        store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Choosing Slurm where `sbatch` is not on PATH is refused before anything is created."""
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(fntree.FntreeError, match="`sbatch`, which is not on PATH"):
        fntree.run(wf.leaf(1), jobstore=store, batch_system="slurm")
    assert not store.exists()
