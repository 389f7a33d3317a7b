"""The worker process's entry point (`main`, started by `WorkerSetup.command` so that
fntree is imported from the leader's path, never from the working directory), in one
of two modes:

- `pipe RFD WFD STORE DIR LIMIT PID` (the local batch system):
  packets arrive on a pipe from the leader, results go back on another;
- `file PACKET STORE STORE_ID LIMIT` (Slurm, Grid Engine): one
  packet read from a file in the job store, its results written there atomically; the
  local temp dirs live under this machine's `<tmp>/fntree-<uid>/<store id>/slurm-<SLURM_JOB_ID>`
  (`sge-<JOB_ID>` on Grid Engine),
  made private and verified (`StorePaths.make_local_base`), and the store is checked
  to be ours alone (`access.check_store_file`) before the packet is unpickled.

It wires the runtime's `JobRunner` to the DSL's `execute`, `describe` and
`target_identity` hooks and to a batch system's transport; it lives at the top so
that no layer imports upward.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

from fntree._imports import standard_library_first

# A worker imports what it needs only: not the leader, the job store or a batch system's
# leader side (`import fntree` leaves them for first use). As fntree's own imports, these
# put the standard library first: a user's random.py must not stand in for `random`.
with standard_library_first():
    from fntree.compiler import execute
    from fntree.dsl import Target
    from fntree.errors import FntreeError
    from fntree.identity import code_hash, describe
    from fntree.runtime.worker import JobRunner


def target_identity(obj: Any) -> tuple[bytes, bool] | None:
    """(code hash, declared pure with cache=True) of a target, else None: the cache's hook."""
    if not isinstance(obj, Target):
        return None
    return code_hash(obj), bool(obj.cache)


def main(argv: list[str]) -> int:
    mode, *rest = argv
    if mode == "pipe":
        with standard_library_first():
            from fntree.batch.local_worker import serve

        rfd, wfd, store, local_dir, limit, parent = rest
        runner = JobRunner(Path(store), Path(local_dir), execute, int(limit), describe,
                           target_identity)
        try:
            serve(runner, int(rfd), int(wfd), int(parent))
        finally:
            runner.close()
        return 0
    if mode == "file":
        with standard_library_first():
            from fntree.batch.slurm_worker import serve_file, supervise
            from fntree.runtime.access import check_store_file
            from fntree.runtime.durable import atomic_write
            from fntree.runtime.paths import StorePaths

        packet, store, store_id, limit = rest
        env = os.environ
        job = (f"slurm-{env['SLURM_JOB_ID']}" if "SLURM_JOB_ID" in env else
               f"sge-{env['JOB_ID']}" if "JOB_ID" in env else f"slurm-pid{os.getpid()}")
        if stat.S_ISREG(os.fstat(1).st_mode):
            os.fchmod(1, 0o600)  # Slurm made our --output file with the submitter's umask
        try:
            check_store_file(Path(store), Path(packet))  # before its packet is unpickled
            local = StorePaths.make_local_base(store_id) / job
        except FntreeError as exc:
            print(f"fntree worker: {exc}", flush=True)  # the leader shows the job's output
            return 2

        def work() -> None:
            runner = JobRunner(Path(store), local, execute, int(limit), describe,
                               target_identity)
            try:
                serve_file(runner, Path(packet), atomic_write)
            finally:
                runner.close()

        return supervise(work, local, local / "output")
    print(f"fntree worker: unknown mode {mode!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
