"""The directory of a new job store: made owner-only with its missing parents, or an
existing empty directory of ours taken as it is; otherwise refused with the reason (an
existing store, a non-empty directory, a file in the way, an unsafe parent, no permission).

`JobStore.create` calls `make_root` first; nothing is written into the directory here.

`no_root_text` is what to say of a store whose journal records no root job. A store
whose creation was interrupted (before its ROOT record was durable) has no journal
segment, or one with no root, and nothing ran in it: removing it loses nothing. The
same symptom in a store where jobs ran means the journal was deleted or emptied
afterwards, and "remove it" would be wrong advice: the error then says what shows that
jobs ran and to restore the journal. The evidence is what only a leader that issued
jobs leaves: an `issued` event in `events.log`, an archive of earlier leaders' events,
a job's kept log or a value stored out of line. The root's own long arguments are
stored out of line by the creation, before it makes `journal/`: values with no
`journal/` beside them are an interrupted creation's, not evidence.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from fntree.errors import JobStoreError, UnsafePathError
from fntree.runtime.durable import make_private_dir
from fntree.runtime.paths import StorePaths


def _empty_directory(root: Path) -> bool:
    """Whether `root` is an empty directory of ours (not a symlink to one)."""
    try:
        return (root.is_dir() and not root.is_symlink() and root.stat().st_uid == os.getuid()
                and not any(root.iterdir()))
    except OSError:
        return False


def make_root(root: Path) -> None:
    """Make the new store's directory (and its missing parents), or say why it cannot be;
    an existing empty directory is taken as it is (`create` then makes it owner-only)."""
    unsafe: UnsafePathError | None = None
    try:
        if not os.path.lexists(root.parent):
            make_private_dir(root.parent)  # missing parents are made owner-only too
        root.mkdir(mode=0o700)
        return
    except FileExistsError:
        if _empty_directory(root):
            return  # made for the run beforehand (by hand, by a job script): a new store
    except NotADirectoryError:
        pass
    except UnsafePathError as exc:
        unsafe = exc
    except OSError as exc:
        raise JobStoreError(f"cannot create the job store directory {root} ({exc}); choose a "
                            "path in a directory you may write to (and, if the disk is full "
                            "or out of inodes, free some)") from None
    if os.path.lexists(root):
        if StorePaths(root).meta.is_file():
            raise JobStoreError(
                f"job store {root} already exists; continue that run with "
                f"fntree.restart({str(root)!r}) (or `fntree restart {root}`), "
                "or choose a new path")
        raise JobStoreError(f"{root} already exists and is neither an empty directory nor an "
                            "fntree job store; choose a new path or an empty directory")
    blocker = next((p for p in root.parents if os.path.lexists(p) and not p.is_dir()), None)
    if blocker is None:
        raise unsafe or JobStoreError(f"cannot create the job store {root}; choose another "
                                      "path")
    raise JobStoreError(f"cannot create the job store {root}: {blocker} is a file, not a "
                        "directory; choose another path")


_HEAD = 1 << 16  # bytes of events.log read: the first issue is near its start


def no_root_text(paths: StorePaths, what: str) -> str:
    """The error for a store with `what` ("no journal", "no root job")."""
    evidence = _ran(paths)
    if evidence is None:
        return (f"{paths.root} has {what}: its creation was interrupted before anything ran; "
                "remove it and run again")
    return (f"{paths.root} has {what}, yet jobs ran in it ({evidence}): its journal was "
            f"deleted or emptied since. Restore {paths.journal_dir} from a backup of the job "
            "store; without it the run cannot be recovered: start it again in a new job store "
            "(a cache, `--cache`, keeps what its pure targets computed)")


def _ran(paths: StorePaths) -> str | None:
    """What shows that jobs ran in the store, or None."""
    with contextlib.suppress(OSError), open(paths.event_log(), "rb") as f:
        if b'"ev":"issued"' in f.read(_HEAD):
            return f"{paths.event_log().name} records issued jobs"
    for archive in (paths.event_archive(), paths.event_rollup(), *paths.event_parts()):
        if os.path.lexists(archive):
            return f"{archive.name} records earlier events"
    with contextlib.suppress(OSError):  # a creation cut off writing the root's arguments
        if paths.journal_dir.is_dir() and any(True for _ in os.scandir(paths.objects)):
            return "objects/ holds values"  # leaves them with no journal/ (JobStore.create)
    with contextlib.suppress(OSError), os.scandir(paths.logs) as found:
        if any(e.name != "live" and e.is_dir(follow_symlinks=False) for e in found):
            return "logs/ holds jobs' logs"
    return None
