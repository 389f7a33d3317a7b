"""Tests of fntree.runtime.eventlog: archiving a finished run's events."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ARCHIVE_A_BIG_LOG = textwrap.dedent("""
    import gzip, resource, sys
    from pathlib import Path
    from fntree.runtime.eventlog import EventLog
    from fntree.runtime.paths import StorePaths
    paths = StorePaths(sys.argv[1])
    line = b'{"ev":"done","job":"0123456789abcdef","name":"leaf","wall":0.001}\\n'
    with open(paths.event_log(), "wb") as log:
        for _ in range(96):
            log.write(line * (2**20 // len(line)))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    EventLog(paths)._archive()
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    with gzip.open(paths.event_archive(), "rb") as f:
        size = sum(len(chunk) for chunk in iter(lambda: f.read(2**20), b""))
    print(grew, size, paths.event_log().exists())
""")


def test_archiving_streams_the_log_without_reading_it_whole(tmp_path: Path) -> None:
    """A 96 MiB event log is archived whole while the leader's peak memory grows by far less
    than the log (it was read into memory at once, which at 10,000,000 jobs is gigabytes)."""
    done = subprocess.run([sys.executable, "-c", ARCHIVE_A_BIG_LOG, str(tmp_path)],
                          capture_output=True, text=True, check=True, timeout=600)
    grew_kib, size, log_left = done.stdout.split()
    assert int(size) > 95 * 2**20 and log_left == "False"
    assert int(grew_kib) < 16 * 1024, grew_kib
