"""Shell targets run again over what an earlier run left: outputs of the same or another kind."""

from __future__ import annotations

from pathlib import Path

import attack_workflows as aw

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
