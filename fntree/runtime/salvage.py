"""Keeping the output of jobs whose workers were stopped with their leader.

Local workers die with their leader (and are killed by it when it is stopped),
each leaving in its directory under the machine-local temp base the output of
the job it was running (`output`) and that job's id (`job`, its `JobMark`).
Before that output is deleted (by the next leader's sweep of an earlier
leader's temp base, or by a leader that stops its own busy workers),
`salvage_outputs` appends each such output to its job's log in
the job store, marked as interrupted, so that what a job printed before a crash
or a `fntree kill` is still there after the restart.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fntree.batch.jobmark import read_mark
from fntree.runtime.paths import StorePaths
from fntree.runtime.worker import append_log

log = logging.getLogger("fntree")


def salvage_outputs(local_base: Path, paths: StorePaths, limit: int) -> None:
    """Append the output of every job a local worker under `local_base` was running."""
    try:
        dirs = sorted(p for p in local_base.iterdir() if p.name.startswith("w") and p.is_dir())
    except OSError:
        return
    for worker_dir in dirs:
        running = read_mark(worker_dir)
        if running is None:
            continue
        try:
            fd = os.open(worker_dir / "output", os.O_RDONLY)
        except OSError:
            continue
        try:
            size = os.fstat(fd).st_size
            if size:
                append_log(paths, running.job_id, running.name, running.attempt, fd, size,
                           limit, "(interrupted: its worker was stopped with its leader) ")
        except OSError as exc:
            log.warning("cannot keep the output of %s: %s", running.name, exc)
        finally:
            os.close(fd)
