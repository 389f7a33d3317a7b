"""Whose journal files these are: a job store's lineage, named by its segments and snapshots.

A store gets a lineage at creation (its first `store_id`, in `fntree.json`), which
copies of it keep when they get their own `store_id`. Each segment opens with an
`R_SEGMENT` record of (lineage, number), and each snapshot carries the same pair
(`RunState.origin`), so recovery refuses a file of another store (a botched
restore, a copy from a run of the same workflow, whose job ids are the same) or a
snapshot under another number (a stray copy, which would make the next leader skip
and remove the segment before it). Stores made before lineages, and their files,
carry none and are not checked.

A segment is made before the files older than its snapshot are removed (by
compaction and by a leader's recovery alike), so a snapshot with no segment and
nothing older means the segment was deleted (`lost_segment_text`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fntree.errors import JobStoreError
from fntree.runtime.paths import StorePaths


def check_origin(origin: Any, lineage: str | None, number: int, path: Path) -> None:
    """Refuse segment or snapshot `path`, read as number `number`, if `origin` (its
    recorded (lineage, number)) names another store or another number."""
    if origin is None or lineage is None or tuple(origin) == (lineage, number):
        return
    kind = "snapshot" if path.name.startswith("snapshot") else "segment"
    written = f"snapshot.{origin[1]}" if kind == "snapshot" else f"{origin[1]}.log"
    if origin[0] != lineage:
        raise JobStoreError(
            f"{path} is not this job store's: it is {written} of the store of lineage "
            f"{origin[0]}, and this store ({path.parent.parent}) is lineage {lineage}. "
            f"Replaying it would mix another run's record into this one. The store is kept "
            f"as it is: restore this store's own journal/{path.name} from a backup")
    raise JobStoreError(
        f"{path} holds this store's {kind} {written} under another name (a copy or a "
        f"rename): read as {path.name}, it would skip records the store holds. The store is "
        f"kept as it is: if it is a stray copy, remove it; else restore journal/{path.name} "
        "from a backup")


def lost_segment_text(paths: StorePaths, base: int) -> str:
    """The error for snapshot `base` found with no segment `base` and nothing older."""
    return (f"journal/{base}.log is missing from job store {paths.root}: a segment is made "
            f"before the files older than its snapshot (journal/snapshot.{base}) are removed, "
            "and those are gone, so it was deleted, and the jobs it recorded as done would run "
            f"again. The store is kept as it is: restore journal/{base}.log from a backup")
