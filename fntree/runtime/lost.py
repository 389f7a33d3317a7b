"""What to say of a job store whose journal records no root job: never made, or lost since.

A store whose creation was interrupted (before its ROOT record was durable) has no
journal segment, or one with no root, and nothing ran in it: removing it loses
nothing. The same symptom in a store where jobs ran means the journal was deleted or
emptied afterwards, and "remove it" would be wrong advice: the error then says what
shows that jobs ran and to restore the journal. The evidence is what only a leader
that issued jobs leaves: an `issued` event in `events.log`, an archive of earlier
leaders' events, a job's kept log or a value stored out of line.
"""

from __future__ import annotations

import contextlib
import os

from fntree.runtime.paths import StorePaths

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
    if os.path.lexists(paths.event_archive()):
        return f"{paths.event_archive().name} records earlier leaders"
    with contextlib.suppress(OSError):
        if any(True for _ in os.scandir(paths.objects)):
            return "objects/ holds values"
    with contextlib.suppress(OSError), os.scandir(paths.logs) as found:
        if any(e.name != "live" and e.is_dir(follow_symlinks=False) for e in found):
            return "logs/ holds jobs' logs"
    return None
