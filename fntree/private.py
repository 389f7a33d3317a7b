"""Owner-only files and directories, under any umask, never through a planted symlink.

Every directory fntree makes goes through `make_private_dir`, every file it makes
is opened with an explicit mode 0600 (`open_private`; `atomic_write` in
`fntree.runtime.durable` likewise). A umask only removes bits, so explicit modes
cannot be widened by it; `make_private_dir` also `fchmod`s what it creates to
exactly 0700, since `mkdir -p`-style parents would otherwise take the umask's
default (0777 under umask 000). It walks down from a directory the caller trusts
with `openat` and `O_NOFOLLOW`, so it never follows a symlink planted on the way,
refuses a level that exists but is another user's or writable by others
(something may have been planted in it), and tightens one of ours that others
can only read. `check_shared_dir` tells whether a directory others share (the
system temp dir) is one in which they cannot replace our entries.

It sits beside `fntree.errors` and `fntree.checksum`, below every layer, because
the runtime and the batch systems both make private files (docs/jobstore.md,
"Who can get in").
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fntree.errors import UnsafePathError

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def make_private_dir(path: Path, anchor: Path | None = None) -> Path:
    """Create `path`, and every missing directory below `anchor`, owner-only (0700).

    `anchor` is a directory the caller trusts; by default, the nearest existing
    ancestor of `path` (through a symlink only if it is root's or ours), which
    must pass `check_shared_dir`. Each level below it is made with `mkdirat` and then
    opened relative to its parent with `O_NOFOLLOW`; one that was already there
    must be a real directory of ours that no one else can write; each is then
    `fchmod`ed to 0700 if it is not, whatever the umask. Anything else raises
    `UnsafePathError` naming the level. Returns `path`.
    """
    path = Path(os.path.abspath(path))
    if anchor is None:
        anchor = _nearest_anchor(path)
        check_shared_dir(anchor)
    anchor = Path(os.path.abspath(anchor))
    parts = path.relative_to(anchor).parts
    fd = os.open(anchor, _OPEN_DIR)
    try:
        for depth, name in enumerate(parts, 1):
            here = anchor.joinpath(*parts[:depth])
            try:
                os.mkdir(name, PRIVATE_DIR, dir_fd=fd)
                made = True
            except FileExistsError:
                made = False
            child = _open_level(name, fd, here)
            os.close(fd)
            fd = child
            _verify_level(fd, here, made)
    finally:
        os.close(fd)
    return path


def _nearest_anchor(path: Path) -> Path:
    """The nearest existing ancestor of `path`, unless it is a file or another user's symlink:
    then its parent, so that it is checked (and refused) as a level."""
    found = next(p for p in path.parents if os.path.lexists(p))
    st = os.lstat(found)
    foreign_link = stat.S_ISLNK(st.st_mode) and st.st_uid not in (0, os.getuid())
    if foreign_link or not os.path.isdir(found):
        return found.parent
    return found


def _open_level(name: str, parent_fd: int, here: Path) -> int:
    """An fd on directory `name` in `parent_fd`: a real directory of ours, never via a link."""
    st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePathError(
            f"{here} is {'a symbolic link' if stat.S_ISLNK(st.st_mode) else 'not a directory'}, "
            "where fntree makes a private directory; fntree never follows a link there: "
            "remove it (if it is not yours, ask its owner or root), or point fntree "
            "elsewhere (TMPDIR, --jobstore)", str(here))
    if st.st_uid != os.getuid():
        raise UnsafePathError(
            f"{here} belongs to another user (uid {st.st_uid}), where fntree makes a private "
            "directory of yours; fntree will not use it: ask its owner or root to remove "
            "it, or point fntree elsewhere (TMPDIR, --jobstore)", str(here))
    fd = os.open(name, _OPEN_DIR | os.O_NOFOLLOW, dir_fd=parent_fd)
    if (os.fstat(fd).st_dev, os.fstat(fd).st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise UnsafePathError(f"{here} was replaced while fntree checked it; someone else "
                              "is changing it: find out who, then run again", str(here))
    return fd


def _verify_level(fd: int, here: Path, made: bool) -> None:
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & 0o022 and not made:
        raise UnsafePathError(
            f"{here} is writable by others (mode {mode:o}), so they may have put files in "
            "it; fntree will not use it: remove it, or if you trust what is inside, run "
            f"`chmod -R go-w {here}`", str(here))
    if mode != PRIVATE_DIR:
        os.fchmod(fd, PRIVATE_DIR)  # made here, or ours and only readable by others


def check_shared_dir(path: Path) -> None:
    """Refuse `path` as a parent of private directories unless others cannot swap our entries.

    It must be a directory owned by root or us (a symlink to it too); if group or
    others may write to it, it must be sticky (like /tmp), so that what we make
    there cannot be renamed or removed by them.
    """
    link = os.lstat(path)
    st = os.stat(path)
    trusted = (0, os.getuid())
    if link.st_uid not in trusted or st.st_uid not in trusted or not stat.S_ISDIR(st.st_mode):
        raise UnsafePathError(
            f"{path} is not a directory owned by root or by you (owner uid {st.st_uid}); "
            "fntree makes no private directories there: choose a directory of yours "
            "(TMPDIR for temp dirs, --jobstore for a job store)", str(path))
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise UnsafePathError(
            f"{path} is writable by others and not sticky (mode {stat.S_IMODE(st.st_mode):o}), "
            "so they could replace what fntree makes there: choose a directory of yours "
            f"(TMPDIR for temp dirs, --jobstore for a job store), or `chmod +t {path}`",
            str(path))


def open_private(path: Path, flags: int) -> int:
    """A file descriptor on `path`, created owner-only (0600) if missing; never via a symlink."""
    return os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
