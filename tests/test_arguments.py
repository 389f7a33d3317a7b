"""`fntree run SCRIPT.py:FUNC ARG...`: arguments converted by annotation, refused before a
job store exists, and FUNC --help from the signature and docstring."""

from __future__ import annotations

import enum
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Literal, Optional

import pytest

from fntree.cli.arguments import kind_of
from fntree.cli.target_help import describe_parameters

SCRIPT = textwrap.dedent('''
    import enum
    from pathlib import Path
    from typing import Literal, Optional

    import fntree

    class Mode(enum.Enum):
        FAST = "fast"
        SLOW = "slow"

    @fntree.target
    def show(n: int, scale: Optional[float] = None, tags: list[int] = [], *,
             mode: Mode = Mode.FAST, kind: Literal["a", "b"] = "a", loud: bool = False,
             out: Path | None = None, pair: tuple[int, str] = (0, ""),
             sizes: tuple[float, ...] = ()) -> object:
        """Show what arrived.

        Args:
            n: how many things
            scale: how large
                each one is
        """
        return repr((n, scale, tags, mode.name, kind, loud, out, pair, sizes))

    @fntree.target
    def table(d: dict = {}) -> int:
        return len(d)
''')


def fntree_cli(*args: str, cwd: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    return subprocess.run([sys.executable, "-m", "fntree", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=180, env=env)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "show.py"
    path.write_text(SCRIPT)
    (tmp_path / "tmp").mkdir()
    return path


def test_every_supported_annotation_is_converted(script: Path, tmp_path: Path) -> None:
    """Optional, list, Literal, Enum, bool flags, Path | None and tuples arrive typed."""
    out = fntree_cli("run", f"{script}:show", "3", "0.5", "1,2", "--mode", "slow",
                     "--kind=b", "--loud", "--out", "x.txt", "--pair", "4,four",
                     "--sizes", "1.5", "--sizes", "2,3", "--no-progress",
                     cwd=tmp_path, tmp=tmp_path / "tmp")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == repr(repr(
        (3, 0.5, [1, 2], "SLOW", "b", True, Path("x.txt"), (4, "four"), (1.5, 2.0, 3.0))))
    out = fntree_cli("run", f"{script}:show", "--n", "-2", "--tags", "", "--no-loud",
                     "--no-progress", cwd=tmp_path, tmp=tmp_path / "tmp")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == repr(repr(
        (-2, None, [], "FAST", "a", False, None, (0, ""), ())))


@pytest.mark.parametrize(("argv", "words"), [
    (["three"], "argument n of show must be of type int, not 'three'"),
    ([], "show needs a value for n"),
    (["1", "2", "3", "4"], "show takes 3 positional argument(s), but 4 were given"),
    (["1", "--mode", "medium"], "argument mode of show cannot be 'medium': choose one of "
     "FAST, SLOW"),
    (["1", "--kind", "c"], "choose one of a, b"),
    (["1", "--pair", "1,2,3"], "give 2 comma-separated items, not 3"),
    (["1", "--wat", "3"], "--wat is not an option of this target"),
    (["1", "--n", "2"], "n was given twice (--n and position 1)"),
    (["1", "--scale"], "--scale needs a value (float)"),
    (["1", "--max-jobs", "x"], "argument --max-jobs: invalid int value: 'x'"),
])
def test_bad_arguments_are_refused_before_a_store_exists(script: Path, tmp_path: Path,
                                                         argv: list[str], words: str) -> None:
    """A conversion error, a missing or an extra argument: exit 2, a remedy, no store."""
    store = tmp_path / "store"
    out = fntree_cli("run", f"{script}:show", *argv, "--jobstore", str(store),
                     cwd=tmp_path, tmp=tmp_path / "tmp")
    assert out.returncode == 2, out.stderr
    assert words in out.stderr and "--help" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not store.exists()


def test_without_jobstore_a_refusal_leaves_no_temporary_store(script: Path,
                                                               tmp_path: Path) -> None:
    """A missing argument of a run without --jobstore leaves nothing in the temp dir."""
    out = fntree_cli("run", f"{script}:show", "--loud", cwd=tmp_path, tmp=tmp_path / "tmp")
    assert out.returncode == 2 and "show needs a value for n" in out.stderr
    assert list((tmp_path / "tmp").iterdir()) == []


def test_unsupported_annotation_is_a_clear_error(script: Path, tmp_path: Path) -> None:
    """A dict parameter given a value is refused, naming the parameter and the way out."""
    out = fntree_cli("run", f"{script}:table", "x", cwd=tmp_path, tmp=tmp_path / "tmp")
    assert out.returncode == 2
    assert "parameter d of table is annotated dict" in out.stderr
    assert "call the target from Python" in out.stderr


def test_help_shows_parameters_types_defaults_and_docstring(script: Path,
                                                             tmp_path: Path) -> None:
    """FUNC --help lists each parameter with its type, default and docstring text."""
    out = fntree_cli("run", f"{script}:show", "--help", cwd=tmp_path, tmp=tmp_path / "tmp")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"usage: fntree run {script}:show N [SCALE] [TAGS]")
    assert "Show what arrived." in lines
    line = next(x for x in lines if x.strip().startswith("SCALE or --scale"))
    assert "float, default None" in line and "how large each one is" in line
    assert any("N or --n N" in x and "required" in x and "how many things" in x
               for x in lines)
    assert any("--loud/--no-loud" in x and "default False" in x for x in lines)
    assert any("{FAST,SLOW}, default FAST" in x for x in lines)
    assert "--jobstore" in out.stdout  # fntree's own options follow
    out = fntree_cli("run", "--help", cwd=tmp_path, tmp=tmp_path / "tmp")
    assert out.returncode == 0 and "temporary" in out.stdout and "removed" in out.stdout


class Colour(enum.Enum):
    RED = 1
    BLUE = 2


def test_kinds_of_annotations() -> None:
    """Each supported annotation converts its text; others carry the reason they cannot."""
    assert kind_of(Optional[int]).convert("7") == 7  # noqa: UP045 - the old spelling too
    assert kind_of(int | None).convert("7") == 7
    assert kind_of(list[float]).convert("1,2.5") == [1.0, 2.5]
    assert kind_of(Literal[1, 2]).convert("2") == 2
    assert kind_of(Colour).convert("blue") is Colour.BLUE
    assert kind_of(Colour).convert("1") is Colour.RED
    assert kind_of(bool).convert("off") is False
    assert kind_of(int | str).problem == "int | str"
    assert kind_of(list[list[int]]).problem is not None
    with pytest.raises(ValueError, match="is not an int"):
        kind_of(int).convert("x")


def test_parameter_descriptions_in_three_docstring_styles() -> None:
    """Google, NumPy and Sphinx docstrings each give their parameters' descriptions."""
    google = "Do.\n\nArgs:\n    n (int): how many\n        of them\n    m: more\n"
    numpy = "Do.\n\nParameters\n----------\nn : int\n    how many\nm : str\n    more\n"
    sphinx = "Do.\n\n:param int n: how many\n:param m: more\n"
    for doc in (google, numpy, sphinx):
        found = describe_parameters(doc)
        assert found["n"].startswith("how many") and found["m"] == "more", (doc, found)
    assert describe_parameters(google)["n"] == "how many of them"
