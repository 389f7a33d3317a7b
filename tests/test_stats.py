"""`fntree stats` and the event log it reads: per-target figures, the run's, and a timeline."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
import ux_workflows as ux
from ux_workflows import cli

import fntree
from fntree.cli.stats import Span
from fntree.cli.timeline import pack_lanes
from fntree.runtime.eventlog import read_events
from fntree.runtime.paths import StorePaths


def test_event_log_of_a_run_and_its_restart(tmp_path: Path) -> None:
    """Each leader appends its events; a torn last line is skipped and the next starts afresh."""
    store = tmp_path / "store"
    ux.failed_run(store, tmp_path / "flag")
    paths = StorePaths(store)
    with open(paths.event_log(), "a") as f:
        f.write('{"t": 1, "ev": "do')  # a leader killed in the middle of a line
    (tmp_path / "flag").write_text("")
    assert fntree.restart(store) == "from the founder:41:teal"
    events = list(read_events(paths))
    kinds = [e["ev"] for e in events]
    assert kinds[0] == "leader" and kinds.count("leader") == 2
    assert [e["epoch"] for e in events if e["ev"] == "leader"] == [1, 2]
    assert [(e["epoch"], e["ok"]) for e in events if e["ev"] == "finished"] == [(1, False),
                                                                               (2, True)]
    done = [e for e in events if e["ev"] == "done"]
    assert sorted(e["name"] for e in done) == sorted(
        ["founder", "spread", "work", "work", "work", "add_up", "number", "picky"])
    assert all(e["wall"] >= 0 and e["cpu"] >= 0 and e["rss"] >= 0 and e["start"] > 0
               for e in done)
    failed = [e for e in events if e["ev"] == "failed"]
    assert [(e["name"], e["attempt"], e["permanent"]) for e in failed] == [
        ("picky", 1, False), ("picky", 2, True)]
    assert sum(e["ev"] == "message" for e in events) == 3
    issued = [e for e in events if e["ev"] == "issued"]
    assert {e["job"] for e in issued} >= {e["job"] for e in done if not e["chained"]}
    assert [p.name for p in paths.event_parts()] == ["events.1.log.gz"]  # one finished leader
    text = gzip.decompress(paths.event_parts()[0].read_bytes()).decode()
    assert '"ev": "do\n' in text  # the torn line is kept, alone on its line


def test_stats_per_target_and_for_the_run(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Counts, wall and cpu times, peak memory and attempts per target; jobs/s and busy cores."""
    store = tmp_path / "store"
    assert fntree.run(ux.spread(6, 0.1), jobstore=store, max_cpus=2) == 55
    code, out, _ = cli("stats", str(store), "--json", capsys=capsys)
    assert code == 0
    stats = json.loads(out)
    assert set(stats) == {"format", "jobstore", "run", "targets", "folded"}
    assert stats["folded"] == {"jobs": 0, "last_part": 0, "messages": 0}  # none: within budget
    work = stats["targets"]["work"]
    assert work["count"] == 6 and work["attempts"] == 6 and work["failures"] == 0
    assert 0.6 <= work["wall_total"] < 3 and 0.1 <= work["wall_max"] < 1
    assert work["wall_mean"] == pytest.approx(work["wall_total"] / 6, abs=1e-5)
    assert 0 < work["cpu_total"] < work["wall_total"]  # they sleep
    assert 0 <= work["rss_max_kib"] < 20_000  # its own: the worker's baseline is not counted
    run = stats["run"]
    assert run["leaders"] == 1 and run["jobs"] == 8 and run["failures"] == 0
    assert run["cores"] == 2 and 0.1 < run["core_busy"] <= 1.0
    assert run["jobs_per_second"] == pytest.approx(8 / run["wall"], rel=0.01)
    code, out, _ = cli("stats", str(store), capsys=capsys)
    assert "8 jobs done in" in out and "1 leader(s)" in out and "cores      2: busy" in out
    # done, wall total / mean / max, cpu, peak memory, attempts, retried, failed
    row = r"^work +6 +\S+ +\S+ +\S+ +\S+ +(-|\S+ [KM]iB) +6 +0 +0$"
    assert re.search(row, out, re.MULTILINE), out


def test_stats_count_failed_attempts_across_leaders(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A job that failed twice, then succeeded after a restart, has 3 attempts and 2 failures."""
    store = tmp_path / "store"
    ux.failed_run(store, tmp_path / "flag")
    (tmp_path / "flag").write_text("")
    fntree.restart(store)
    stats = json.loads(cli("stats", str(store), "--json", capsys=capsys)[1])
    picky = stats["targets"]["picky"]
    assert (picky["count"], picky["attempts"], picky["failures"]) == (1, 3, 2)
    assert (picky["done"], picky["retried"], picky["failed"]) == (1, 1, 1)
    assert stats["run"]["leaders"] == 2 and stats["run"]["failures"] == 2


def test_timeline_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--html writes the timeline page: every job, both failed attempts and leaders, a legend."""
    store = tmp_path / "store"
    ux.failed_run(store, tmp_path / "flag")
    (tmp_path / "flag").write_text("")
    fntree.restart(store, max_cpus=2)
    page = tmp_path / "timeline.html"
    code, _, err = cli("stats", str(store), "--html", str(page), capsys=capsys)
    assert code == 0 and f"timeline written to {page}" in err
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script>" in html and "src=" not in html
    data = json.loads(html.split('type="application/json">')[1].split("</script>")[0])
    assert len(data["jobs"]["id"]) == 8  # one bar per completed job
    assert len(data["failures"]) == 2 and len(data["leaders"]) == 2
    assert data["lanes"] >= 1
    for name in ("founder", "spread", "work", "add_up", "number", "picky"):
        assert f"{name} (" in html  # the legend, with counts


def test_lanes_are_packed_as_tightly_as_the_overlaps_allow() -> None:
    """Lanes: the lowest one free at each start, so no more than ran at once."""
    spans = [Span(start, end - start, "t", str(k), 1, 0.0, 0, 1.0)
             for k, (start, end) in enumerate([(0, 4), (1, 2), (2, 3), (3, 5), (4.5, 6),
                                                (5, 7)])]
    assert pack_lanes(spans) == [0, 1, 1, 1, 0, 1]
    assert pack_lanes([]) == []


def test_completed_runs_events_are_archived_compressed(tmp_path: Path) -> None:
    """A completed run's events move to a compressed part, and are still read from there."""
    store = tmp_path / "store"
    fntree.run(ux.spread(3), jobstore=store)
    assert not (store / "events.log").exists()
    assert (store / "events.1.log.gz").stat().st_size > 0
    kinds = [e["ev"] for e in read_events(StorePaths(store))]
    assert kinds[0] == "leader" and kinds[-1] == "finished" and "done" in kinds


@pytest.mark.parametrize("damage", ["cut", "garbage"])
def test_stats_on_a_cut_archive_reads_what_it_can_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str) -> None:
    """A torn or damaged part is read up to the damage; stats says it is cut."""
    store = tmp_path / "store"
    fntree.run(ux.spread(3), jobstore=store)
    archive = store / "events.1.log.gz"
    data = archive.read_bytes()
    if damage == "cut":
        archive.write_bytes(data[: len(data) * 2 // 3])
    else:
        archive.write_bytes(data[: len(data) // 2] + b"\xff" * 64 + data[len(data) // 2:])
    cut: list[str] = []
    events = list(read_events(StorePaths(store), cut))
    assert events and events[0]["ev"] == "leader"
    assert len(cut) == 1 and "events.1.log.gz is cut short" in cut[0]
    code, out, err = cli("stats", str(store), capsys=capsys)
    assert code == 0 and "job store" in out
    assert "is cut short" in err
