"""Shell targets run again over what an earlier run left: outputs of the same or another kind."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attack_workflows as aw
import pytest

import fntree


def test_a_directory_output_made_again_replaces_the_earlier_one(tmp_path: Path) -> None:
    """A shell target whose output is a directory runs again over the earlier run's directory
    (a new store, an edited command): the new directory replaces it, nothing of the old stays."""
    out = tmp_path / "result"
    assert fntree.run(aw.dir_output(out, "one"), jobstore=tmp_path / "s1") == out
    (out / "stale").write_text("from before")
    assert fntree.run(aw.dir_output(out, "two"), jobstore=tmp_path / "s2") == out
    assert sorted(p.name for p in out.iterdir()) == ["a"]
    assert (out / "a").read_text() == "two\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_output_of_another_kind_than_before_replaces_it(tmp_path: Path) -> None:
    """A file output where a directory was, and a directory where a file was, replace it."""
    out = tmp_path / "result"
    out.mkdir()
    (out / "old").write_text("x")
    assert fntree.run(aw.file_output(out, "file"), jobstore=tmp_path / "s1") == out
    assert out.read_text() == "file\n"
    assert fntree.run(aw.dir_output(out, "dir"), jobstore=tmp_path / "s2") == out
    assert (out / "a").read_text() == "dir\n"


@pytest.mark.parametrize(("target", "words"), [
    (aw.forgot_return, "returned nothing (None: does its body end without `return`?)"),
    (aw.returns_number, "returned a value of type int (42), not a command"),
    (aw.returns_blank, "returned an empty command"),
])
def test_a_shell_target_that_returns_no_command_fails_saying_what_it_returned(
        tmp_path: Path, target: Any, words: str) -> None:
    """A body that forgets `return`, returns a number or a blank string fails its job, once
    (not retried), with a message saying what it returned and what to return."""
    with pytest.raises(fntree.WorkflowFailed, match=re.escape(words)) as failed:
        fntree.run(target(1), jobstore=tmp_path / "s")
    assert "return a" in str(failed.value)
