"""The helpers that make fntree's files private: `make_private_dir`, `open_private`,
`check_shared_dir`, and the store checks built on them (`fntree.runtime.access`)."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fntree.errors import JobStoreError, UnsafePathError
from fntree.runtime.access import check_store_file, check_store_tree, is_copy
from fntree.runtime.durable import check_shared_dir, make_private_dir, open_private


@pytest.fixture
def umask_000() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_every_level_made_is_owner_only_under_umask_000(tmp_path: Path, umask_000: None) -> None:
    """Missing parents and the directory itself are made 0700 even when the umask allows all."""
    target = tmp_path / "a" / "b" / "c"
    assert make_private_dir(target) == target
    for level in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert _mode(level) == 0o700


def test_private_dir_made_0700_under_a_umask_that_hides_owner_bits(tmp_path: Path) -> None:
    """A umask that would leave the owner no access still gives exactly 0700."""
    previous = os.umask(0o777)
    try:
        make_private_dir(tmp_path / "x" / "y")
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "x") == _mode(tmp_path / "x" / "y") == 0o700


def test_existing_dir_others_cannot_write_is_made_0700(tmp_path: Path) -> None:
    """A level of ours that others can only read is tightened to 0700; the anchor is left."""
    for name in ("d", "d/e"):
        (tmp_path / name).mkdir()
        os.chmod(tmp_path / name, 0o755)
    make_private_dir(tmp_path / "d" / "e")
    assert _mode(tmp_path / "d") == 0o755 and _mode(tmp_path / "d" / "e") == 0o700


def test_symlink_level_is_refused_and_not_followed(tmp_path: Path) -> None:
    """A symlink where a level should be is refused; nothing is made where it points."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "base").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="symbolic link") as info:
        make_private_dir(tmp_path / "base" / "store", anchor=tmp_path)
    assert info.value.path == str(tmp_path / "base")
    assert list(elsewhere.iterdir()) == []


def test_file_level_is_refused(tmp_path: Path) -> None:
    """A file where a level should be is refused with its path."""
    (tmp_path / "f").write_text("")
    with pytest.raises(UnsafePathError, match="not a directory"):
        make_private_dir(tmp_path / "f" / "g")


def test_existing_level_writable_by_others_is_refused(tmp_path: Path) -> None:
    """A level others could write (and so plant in) is refused, with the chmod remedy."""
    (tmp_path / "open").mkdir()
    os.chmod(tmp_path / "open", 0o777)
    with pytest.raises(UnsafePathError, match=r"writable by others.*chmod -R go-w"):
        make_private_dir(tmp_path / "open" / "x", anchor=tmp_path)
    with pytest.raises(UnsafePathError, match=r"writable by others and not sticky"):
        make_private_dir(tmp_path / "open" / "x")
    assert not (tmp_path / "open" / "x").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory another user's needs root")
def test_existing_level_of_another_user_is_refused(tmp_path: Path) -> None:
    """A level that belongs to another user is refused, even when it is private."""
    (tmp_path / "theirs").mkdir(mode=0o700)
    os.chown(tmp_path / "theirs", 65534, 65534)
    with pytest.raises(UnsafePathError, match="belongs to another user"):
        make_private_dir(tmp_path / "theirs" / "x", anchor=tmp_path)
    with pytest.raises(UnsafePathError, match="not a directory owned by root or by you"):
        make_private_dir(tmp_path / "theirs" / "x")


def test_open_private_makes_0600_and_never_follows_a_link(tmp_path: Path,
                                                          umask_000: None) -> None:
    """`open_private` creates 0600 under umask 000, and refuses a symlink in the file's place."""
    os.close(open_private(tmp_path / "log", os.O_WRONLY | os.O_APPEND))
    assert _mode(tmp_path / "log") == 0o600
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (tmp_path / "link").symlink_to(victim)
    with pytest.raises(OSError):
        open_private(tmp_path / "link", os.O_WRONLY | os.O_TRUNC)
    assert victim.read_text() == "keep me"


def test_shared_dir_must_be_sticky_if_others_can_write(tmp_path: Path) -> None:
    """A temp dir others can write is trusted only with the sticky bit, like /tmp."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(UnsafePathError, match=r"not sticky.*TMPDIR for temp dirs"):
        check_shared_dir(shared)
    os.chmod(shared, 0o1777)
    check_shared_dir(shared)
    check_shared_dir(Path("/tmp"))


def _store_tree(root: Path) -> Path:
    for sub in ("journal", "batch/slurm/tok", "logs/ab", "tmp/g/c"):
        (root / sub).mkdir(parents=True, mode=0o700)
    for path in [root, *root.rglob("*")]:
        os.chmod(path, 0o700)
    (root / "journal" / "1.log").write_bytes(b"")
    (root / "journal" / "1.log").chmod(0o600)
    return root


def test_store_tree_inner_directory_writable_by_others_is_named(tmp_path: Path) -> None:
    """An inner pickle directory others can write is refused by name, even with a private root."""
    root = _store_tree(tmp_path / "store")
    check_store_tree(root)
    os.chmod(root / "batch" / "slurm" / "tok", 0o777)
    with pytest.raises(JobStoreError, match=r"batch/slurm/tok, which is writable.*chmod -R go-w"):
        check_store_tree(root)


def test_store_tree_symlink_in_journal_is_refused(tmp_path: Path) -> None:
    """A symbolic link among the journal's files is refused: fntree makes none."""
    root = _store_tree(tmp_path / "store")
    (root / "journal" / "snapshot.9").symlink_to(tmp_path)
    with pytest.raises(JobStoreError, match=r"snapshot\.9, which is a symbolic link"):
        check_store_tree(root)


def test_store_tree_ignores_what_jobs_do_in_their_temp_dirs(tmp_path: Path) -> None:
    """Global temp dirs and logs hold no pickles: a job's own modes there are its business."""
    root = _store_tree(tmp_path / "store")
    os.chmod(root / "tmp" / "g" / "c", 0o777)
    (root / "tmp" / "g" / "c" / "link").symlink_to(tmp_path)
    check_store_tree(root)
    shutil.rmtree(root / "tmp")


def test_copy_is_told_from_a_rename_and_from_another_mount() -> None:
    """Another inode is a copy; the same inode renamed, or seen at the same path on another
    device number (NFS on another machine), is the same store."""
    here = {"dev": 1, "ino": 10, "path": "/a/store"}
    assert not is_copy(here, here)
    assert is_copy(here, {"dev": 1, "ino": 11, "path": "/a/copy"})
    assert not is_copy(here, {"dev": 1, "ino": 10, "path": "/a/renamed"})
    assert not is_copy(here, {"dev": 7, "ino": 10, "path": "/a/store"})
    assert is_copy(here, {"dev": 7, "ino": 10, "path": "/b/store"})


def test_store_file_check_covers_each_level_down_to_the_file(tmp_path: Path) -> None:
    """A one-file reader (a Slurm worker) refuses a writable level on the way, or the file."""
    root = _store_tree(tmp_path / "store")
    packet = root / "batch" / "slurm" / "tok" / "1.in"
    packet.write_bytes(b"")
    packet.chmod(0o600)
    check_store_file(root, packet)
    os.chmod(root / "batch", 0o777)
    with pytest.raises(JobStoreError, match=r"store/batch, which is writable"):
        check_store_file(root, packet)
    os.chmod(root / "batch", 0o700)
    packet.chmod(0o666)
    with pytest.raises(JobStoreError, match=r"1\.in, which is writable"):
        check_store_file(root, packet)
