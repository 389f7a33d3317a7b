"""Who can get in to a job store: the checks before anything in it is unpickled, and its identity.

A job store holds pickles, and unpickling runs code, so a store must be its
owner's alone all the way down, not only at the top. `check_store_tree` is the
one check every loader passes through (`JobStore.open`; the Slurm worker checks
the same way each level down to its packet, `check_store_file`): the root,
every entry of the root, and everything under the directories that hold
pickles (`journal/`, `batch/`, `objects/`) must be ours, not symbolic links, and
not writable by group or others. (An object is also read only if its bytes hash
to its name, which no one can arrange without writing the very bytes fntree wrote.)
`logs/` and `tmp/` hold no pickles (and the global temp dirs are the jobs' own),
so only their entry in the root is checked. Once it passes, no one else can
change what it saw: only the owner (or root) may chmod, and no one else may
create entries in a directory they cannot write.

Identity: `fntree.json` records the store's `store_id` and where its root is
(`st_dev`, `st_ino`, real path). A store whose root is not where it was
recorded is a copy (`cp -a`, a restored backup): `own_identity` gives it a new
`store_id`, durably, and drops the original's Slurm files, before anything
reaches a location shared with the original (the machine-local temp base,
`fntree clean`, Slurm job names). A rename within a filesystem keeps the inode
and is the same store; so is the same path seen with another `st_dev` (an NFS
mount on another machine).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import Any

from fntree.errors import JobStoreError
from fntree.runtime.durable import atomic_write
from fntree.runtime.meta import meta_bytes
from fntree.runtime.paths import StorePaths

PICKLE_DIRS = frozenset({"journal", "batch", "objects"})


def new_store_id() -> str:
    return uuid.uuid4().hex[:16]


def check_store_tree(root: Path) -> None:
    """Refuse the store at `root` if anything that holds pickles is not ours alone.

    Every such path is looked at; the error names the first in sorted order (a
    directory before what it holds) and counts the rest.
    """
    st = os.stat(root)
    problems = [_problem(root, st, root)] if _suspect(st) else []
    stack = [root]
    while stack:
        directory = stack.pop()
        with contextlib.suppress(FileNotFoundError), os.scandir(directory) as entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # removed meanwhile (compaction, a Slurm token)
                    continue
                if _suspect(st):
                    problems.append(_problem(Path(entry.path), st, root))
                if stat.S_ISDIR(st.st_mode) and (directory != root or entry.name in PICKLE_DIRS):
                    stack.append(Path(entry.path))
    if problems:
        problems.sort()
        more = f" ({len(problems) - 1} more paths in it are not safe either)" \
            if len(problems) > 1 else ""
        raise JobStoreError(problems[0][1] + more)


def check_store_file(root: Path, path: Path) -> None:
    """`check_store_tree` for one file to load: the root, each directory down to it, and it.

    For a reader of one file, such as a Slurm worker and its packet, so that a
    thousand workers do not each walk every packet of the run.
    """
    levels = [root, *(root / part for part in itertools.accumulate(
        path.relative_to(root).parts, lambda a, b: f"{a}/{b}"))]
    for level in levels:
        try:
            st = os.stat(level) if level == root else os.lstat(level)
        except FileNotFoundError:  # gone: its reader says so
            return
        if _suspect(st):
            raise JobStoreError(_problem(level, st, root)[1])


def _suspect(st: os.stat_result) -> bool:
    return bool(stat.S_ISLNK(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022)


def _problem(path: Path, st: os.stat_result, root: Path) -> tuple[str, str]:
    """(path, what is wrong and what to do) for a `_suspect` path."""
    what = f"job store {path}" if path == root else f"job store {root} holds {path}, which"
    if stat.S_ISLNK(st.st_mode):
        return str(path), (
            f"{what} is a symbolic link, where fntree makes none; a job store holds "
            "pickled code, so fntree loads only stores that are their owner's alone: remove "
            "the link if you trust the rest, else remove the store")
    if st.st_uid != os.getuid():
        return str(path), (
            f"{what} belongs to another user (uid {st.st_uid}); a job store "
            "holds pickled code, so fntree loads only stores whose every file is its "
            f"user's: if you trust it, have root run `chown -R {os.getuid()} {root}`, else "
            "remove it")
    return str(path), (
        f"{what} is writable by others (mode "
        f"{stat.S_IMODE(st.st_mode):o}); a job store holds pickled code, which anyone "
        f"who can write there could replace: if you trust its contents, run "
        f"`chmod -R go-w {root}`")


def identity_of(root: Path) -> dict[str, Any]:
    """Where the root of a store is: recorded in `fntree.json` under "root"."""
    st = os.stat(root)
    return {"dev": st.st_dev, "ino": st.st_ino, "path": os.path.realpath(root)}


def is_copy(recorded: Any, here: dict[str, Any]) -> bool:
    """Whether a store recorded at `recorded` now found at `here` is another directory."""
    if not isinstance(recorded, dict):
        return False
    if recorded.get("ino") != here["ino"]:
        return True
    return recorded.get("dev") != here["dev"] and recorded.get("path") != here["path"]


def own_identity(paths: StorePaths, meta: dict[str, Any]) -> dict[str, Any]:
    """`meta`, or for a copy a new identity written to its `fntree.json` (see the docstring).

    Stores older than this record get theirs now. A store that cannot be written
    (read-only) keeps its file, but a copy is still given a fresh id for this process.
    """
    here = identity_of(paths.root)
    if "root" in meta and not is_copy(meta["root"], here):
        return meta
    fd = os.open(paths.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # one process re-identifies; the others read its result
        with contextlib.suppress(OSError, ValueError):
            meta = {k: v for k, v in json.loads(paths.meta.read_text()).items() if k != "crc32"}
        copied = is_copy(meta.get("root"), here)
        if "root" in meta and not copied:
            return meta
        new = dict(meta, root=here)
        if copied:
            new.update(store_id=new_store_id(), copied_from=meta.get("store_id"))
        try:
            if copied:  # the original's Slurm packets and job ids are not this store's
                shutil.rmtree(paths.batch, ignore_errors=True)
            atomic_write(paths.meta, meta_bytes(new))
        except OSError:
            return new if copied else meta
        return new
    finally:
        os.close(fd)
