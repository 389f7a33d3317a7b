"""The worker process's entry point: `python -m fntree._worker pipe RFD WFD STORE DIR LIMIT PID`.

It wires the runtime's `JobRunner` to the DSL's `execute` hook and to a batch
system's transport; it lives at the top so that no layer imports upward.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fntree.compiler import execute
from fntree.runtime.worker import JobRunner


def main(argv: list[str]) -> int:
    mode, *rest = argv
    if mode == "pipe":
        from fntree.batch.local import serve

        rfd, wfd, store, local_dir, limit, parent = rest
        runner = JobRunner(Path(store), Path(local_dir), execute, int(limit))
        try:
            serve(runner, int(rfd), int(wfd), int(parent))
        finally:
            runner.close()
        return 0
    print(f"fntree worker: unknown mode {mode!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
