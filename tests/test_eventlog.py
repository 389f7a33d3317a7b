"""Tests of fntree.runtime.eventlog: archiving the events, at the end of a run and on the way."""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import workflows

import fntree
from fntree.runtime import eventlog
from fntree.runtime.check import ERROR, check
from fntree.runtime.eventlog import read_events
from fntree.runtime.paths import StorePaths

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
    with gzip.open(paths.event_part(1), "rb") as f:
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


def test_a_long_run_archives_its_event_log_on_the_way(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Past PART_BYTES the log is archived into numbered parts while the run goes on; readers
    see every event once and in order, and `fntree check` finds the parts in their place."""
    monkeypatch.setattr(eventlog, "PART_BYTES", 4096)
    monkeypatch.setattr(eventlog, "FLUSH_EVERY", 0.01)  # many writes, so many parts
    store = tmp_path / "store"
    assert fntree.run(workflows.fan(200), jobstore=store) == sum(range(200))
    paths = StorePaths(store)
    parts = paths.event_parts()
    assert len(parts) >= 2 and not paths.event_log().exists()
    assert all(p.stat().st_size < 4096 for p in parts)  # each about 8x smaller than its log
    events = list(read_events(paths))
    done = [e for e in events if e["ev"] == "done"]
    assert len(done) == len({e["job"] for e in done}) == 202
    assert [e["ev"] for e in events][::len(events) - 1] == ["leader", "finished"]
    assert [f.text for f in check(store) if f.level == ERROR] == []


def test_an_older_stores_archive_is_read_before_the_parts(tmp_path: Path) -> None:
    """events.log.gz, as older fntree versions archived, is read first, then the parts."""
    store = tmp_path / "store"
    assert fntree.run(workflows.fan(3), jobstore=store) == 3
    paths = StorePaths(store)
    older = b'{"t": 1, "ev": "leader", "epoch": 0, "pid": 1}\n'
    with gzip.open(paths.event_archive(), "wb") as f:
        f.write(older)
    events = list(read_events(paths))
    assert events[0]["epoch"] == 0 and events[1]["ev"] == "leader" and events[1]["epoch"] == 1
    assert events[-1]["ev"] == "finished"
