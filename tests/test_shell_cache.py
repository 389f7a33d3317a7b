"""The cache of shell targets: keyed on command, tool and inputs; a hit needs its outputs intact."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import shell_workflows as sw

import fntree
from fntree.cli.status import describe
from fntree.runtime.store import JobStore
from fntree.shell_cache import tool_identity


def _runs(log: Path) -> int:
    return len(log.read_text().split()) if log.exists() else 0


def test_a_hit_needs_its_outputs_present_and_unchanged(tmp_path: Path) -> None:
    """A second run takes the value from the cache; a deleted or changed output runs again."""
    cache, src, out, log = (tmp_path / n for n in ("cache", "src", "out file", "log"))
    src.write_text("abc\n")
    stores = iter(tmp_path / f"store{i}" for i in range(10))

    def run() -> Path:
        value: Path = fntree.run(sw.cached_upper(src, out, str(log)), jobstore=next(stores),
                                 cache=cache)
        return value

    assert run() == out and _runs(log) == 1 and out.read_text() == "ABC\n"
    assert run() == out and _runs(log) == 1  # a hit: the command did not run
    assert describe(JobStore.open(tmp_path / "store1"))["cached"]["jobs"] == 1  # and it says so
    out.unlink()
    assert run() == out and _runs(log) == 2 and out.read_text() == "ABC\n"  # output gone
    out.write_text("ABX\n")
    assert run() == out and _runs(log) == 3 and out.read_text() == "ABC\n"  # output changed
    src.write_text("xyz\n")
    assert run() == out and _runs(log) == 4 and out.read_text() == "XYZ\n"  # input changed
    assert run() == out and _runs(log) == 4


def test_without_a_cache_directory_the_command_runs(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """cache=True with no cache directory given runs the command every time."""
    monkeypatch.delenv("FNTREE_CACHE", raising=False)
    src, out, log = tmp_path / "src", tmp_path / "out", tmp_path / "log"
    src.write_text("abc\n")
    for i in range(2):
        fntree.run(sw.versioned(src, out, str(log)), jobstore=tmp_path / f"s{i}")
    assert _runs(log) == 2 and out.read_text() == "abc\n"


def test_tool_identity_follows_the_executable(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A tool is identified by its resolved executable, size and mtime: replacing it shows."""
    tool = tmp_path / "mytool"
    tool.write_text("#!/bin/sh\necho one\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    first = tool_identity(["bash", "LC_ALL=C mytool --flag 'a b' | sort"])
    assert first.startswith(os.fsencode(tool))
    assert tool_identity(["mytool", "x"]) == first
    tool.write_text("#!/bin/sh\necho two, longer\n")
    assert tool_identity(["mytool", "x"]) != first
    assert tool_identity(["bash", "cd /tmp && ls"]).startswith(b"-")  # a builtin: no file
