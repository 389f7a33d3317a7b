"""`fntree timeline`: per-job peak memory of the job's own process tree, declared against used,
and the page itself checked in a real headless Chromium (zoom, aggregation, restarts)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import timeline_workflows as tw
import ux_workflows as ux
from browser import Image, render

import fntree
from fntree.cli.timeline import gather, segments, timeline_data
from fntree.runtime.eventlog import read_events
from fntree.runtime.paths import StorePaths
from fntree.runtime.store import JobStore

MIB = 1024  # KiB


def timeline(store: Path, page: Path) -> None:
    """Run `fntree timeline STORE -o PAGE` as a user would."""
    done = subprocess.run([sys.executable, "-m", "fntree", "timeline", str(store), "-o", str(page)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and f"timeline written to {page}" in done.stderr, done.stderr


def body(dom: str) -> str:
    """The attributes the page's script set on <body> (data-rendered, data-error...)."""
    found = re.search(r"<body([^>]*)>", dom)
    assert found is not None
    return found.group(1)


def chart(dom: str) -> str:
    """What the script drew: the chart's SVG, without the page's own script text."""
    return dom.split('<div id="chart"', 1)[1].split('<table id="targets"', 1)[0]


def _peaks(store: Path) -> dict[str, int]:
    peaks: dict[str, int] = {}
    for event in read_events(StorePaths(store)):
        if event["ev"] == "done":
            peaks[event["name"]] = max(peaks.get(event["name"], 0), event["rss"])
    return peaks


@pytest.fixture(scope="module")
def sized_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of a 200 MiB hog, a 150 MiB child process, an idle job and 300 blips."""
    store = tmp_path_factory.mktemp("sized") / "store"
    fntree.run(tw.sized(200, 150, 300), jobstore=store, max_cpus=2)
    return store


def test_peak_memory_is_the_jobs_own_process_tree(sized_run: Path) -> None:
    """A job's peak is what it and its processes held, not the worker's baseline."""
    peaks = _peaks(sized_run)
    assert 195 * MIB <= peaks["hog"] <= 260 * MIB, peaks
    assert 150 * MIB <= peaks["child_hog"] <= 260 * MIB, peaks  # a child process's memory
    assert peaks["idle"] < 8 * MIB, peaks  # the worker's own ~25 MiB is not the job's


def test_declared_resources_are_read_per_target(sized_run: Path) -> None:
    """The issued events say what each target declared; the page shows it beside the peak."""
    declared = gather(JobStore.open(sized_run))[1]
    assert declared["hog"].memory == 512 << 20 and declared["hog"].time == 60.0
    assert declared["child_hog"].memory == 1 << 30 and declared["child_hog"].time is None
    assert declared["idle"].memory is None
    page = sized_run.parent / "sized.html"
    timeline(sized_run, page)
    table = page.read_text().split('<table id="targets">')[1]
    hog = re.search(r"<tr><td>hog</td>.*?</tr>", table)
    assert hog is not None
    assert "512.0 MiB" in hog.group() and "60.0s" in hog.group() and "384M" in hog.group()


def test_segments_split_at_long_idle_gaps() -> None:
    """Activity minutes apart is two segments; a short pause is not a gap."""
    assert segments([(0, 10), (2, 12), (13, 20)]) == [(0, 20)]
    assert segments([(0, 10), (300, 320), (321, 330)]) == [(0, 10), (300, 330)]
    assert segments([]) == [(0.0, 1e-3)]


def test_the_page_draws_every_job_and_zooms_in_chromium(sized_run: Path, tmp_path: Path) -> None:
    """In Chromium: no script error, every job drawn alone or in an aggregate, zoom narrows."""
    page = tmp_path / "page.html"
    timeline(sized_run, page)
    whole = tmp_path / "whole.png"
    dom, errors = render(page.as_uri(), whole, size=(1300, 420))
    assert not errors and "data-error" not in body(dom)
    assert 'data-rendered="1"' in body(dom) and 'data-segments="1"' in body(dom)
    alone = chart(dom).count('<rect class="job"')
    together = sum(int(n) for n in re.findall(r'class="agg" data-jobs="(\d+)"', chart(dom)))
    assert alone + together == 304  # none lost, however short
    assert together > 0
    # zoomed on the first few blips: they are drawn apart
    data = timeline_data(gather(JobStore.open(sized_run))[0])
    colours = dict(data["targets"])
    blip = [name for name, _ in data["targets"]].index("blip")
    starts = [s for s, k in zip(data["jobs"]["s"], data["jobs"]["k"], strict=True) if k == blip]
    total = data["segments"][0][1] - data["segments"][0][0]
    a = (min(starts) - data["segments"][0][0]) / total
    url = f"{page.as_uri()}#view={a - 0.0005:.6f},{a + 0.002:.6f}"
    near = tmp_path / "zoomed.png"
    zoomed, errors = render(url, near, size=(1300, 420))
    assert not errors and 'data-rendered="1"' in body(zoomed)
    assert "data-error" not in body(zoomed)
    aggregated = re.search(r'data-aggregated="(\d+)"', body(zoomed))
    assert aggregated is not None and int(aggregated.group(1)) < together
    assert '<rect class="job"' in chart(zoomed)
    image = Image(whole)
    plot = (64, 150, 1290, 260)
    for name in ("hog", "blip", "child_hog"):  # their bars are there
        assert image.count(colours[name], plot) > 20, name
    assert Image(near).count(colours["blip"], plot) > 20  # the blips, drawn apart


def test_a_restart_later_is_its_own_segment(tmp_path: Path) -> None:
    """A restart after an idle pause: two segments, the gap collapsed, one label format."""
    store = tmp_path / "store"
    ux.failed_run(store, tmp_path / "flag")
    time.sleep(4)  # idle: longer than a tenth of the active time
    (tmp_path / "flag").write_text("")
    fntree.restart(store, max_cpus=2)
    page = tmp_path / "page.html"
    timeline(store, page)
    data = json.loads(page.read_text().split('type="application/json">')[1].split("</script>")[0])
    assert len(data["segments"]) == 2 and len(data["leaders"]) == 2
    png = tmp_path / "restart.png"
    dom, errors = render(page.as_uri(), png, size=(1300, 420))
    assert not errors and 'data-segments="2"' in body(dom) and "data-error" not in body(dom)
    drawn = chart(dom)
    assert drawn.count('<g class="gap">') == 1 and re.search(r">[\d.]+m?s idle</text>", drawn)
    assert "leader 1</text>" in drawn and "leader 2</text>" in drawn
    marks = drawn.count('<path class="failure"')  # failures a few pixels apart share one
    assert marks == 2 or (marks == 1 and "<title>2 failed attempts, e.g. picky" in drawn)
    labels = re.findall(r'class="tick"[^>]*>([^<]+)<', drawn)
    assert len(labels) >= 4
    shapes = {re.sub(r"\d", "9", label) for label in labels}
    assert len(shapes) <= 2, labels  # one format: "9.9s" (and "99.9s" past ten seconds)
    picky = dict(data["targets"])["picky"]
    assert Image(png).count(picky, (64, 150, 1290, 300)) > 0  # the restarted job is drawn
