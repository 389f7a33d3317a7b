"""Defaults from `[tool.fntree]` / `fntree.toml`, profiles and FNTREE_ variables: shown by
`fntree config` with their sources, and applied by real runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PYPROJECT = textwrap.dedent("""
    [project]
    name = "wordcount"

    [tool.fntree]
    retry-count = 0
    max-jobs = 10
    log-level = "ERROR"

    [tool.fntree.profiles.cluster]
    retry-count = 1
    jobstore-root = "runs"
    max-log-mb = 4
""")

SCRIPT = textwrap.dedent("""
    import pathlib

    import fntree

    @fntree.target
    def boom(n: int) -> int:
        with open(pathlib.Path(__file__).with_name("attempts"), "a") as attempts:
            attempts.write("x")
        raise OSError(n)  # worth a retry
""")


def fntree_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FNTREE_")}
    return subprocess.run([sys.executable, "-m", "fntree", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=180, env={**clean, **env})


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "boom.py").write_text(SCRIPT)
    (tmp_path / "src").mkdir()
    return tmp_path


def shown(out: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    """`fntree config`'s table: key -> (value, source)."""
    assert out.returncode == 0, out.stderr
    rows = {}
    for line in out.stdout.splitlines()[2:]:
        key, value, source = line.split(None, 2)
        rows[key] = (value, source)
    return rows


def test_config_shows_each_value_with_its_source(project: Path) -> None:
    """Command line > environment > profile > file > built-in, found from a subdirectory."""
    here = project / "src"
    file = f"{project / 'pyproject.toml'} [tool.fntree]"
    rows = shown(fntree_cli("config", cwd=here))
    assert rows["retry-count"] == ("0", file)
    assert rows["max-jobs"] == ("10", file)
    assert rows["batch-system"] == ("local", "built-in default")
    rows = shown(fntree_cli("config", "--profile", "cluster", cwd=here))
    assert rows["retry-count"] == ("1", f"profile cluster in {file}")
    assert rows["jobstore-root"] == (str(project / "runs"), f"profile cluster in {file}")
    rows = shown(fntree_cli("config", cwd=here, FNTREE_PROFILE="cluster",
                            FNTREE_RETRY_COUNT="2"))
    assert rows["retry-count"] == ("2", "environment $FNTREE_RETRY_COUNT")
    assert rows["max-log-mb"] == ("4", f"profile cluster in {file}")
    rows = shown(fntree_cli("config", "--retry-count", "3", cwd=here, FNTREE_PROFILE="cluster",
                            FNTREE_RETRY_COUNT="2"))
    assert rows["retry-count"] == ("3", "command line --retry-count")
    (project / "fntree.toml").write_text('max-jobs = 20\n')
    rows = shown(fntree_cli("config", cwd=here))
    assert rows["max-jobs"] == ("20", str(project / "fntree.toml"))


def test_a_real_run_applies_the_precedence(project: Path) -> None:
    """The profile's retries and job store root, then the environment's, then the CLI's."""
    def attempts(out: subprocess.CompletedProcess[str]) -> str:
        assert out.returncode == 1, out.stderr
        made = project / "attempts"
        count = made.read_text()
        made.unlink()
        return str(len(count))

    out = fntree_cli("run", "boom.py:boom", "1", "--profile", "cluster", cwd=project)
    assert attempts(out) == "2"  # retry-count 1 from the profile over 0 from the file
    kept = list((project / "runs").iterdir())  # the profile's jobstore-root
    assert len(kept) == 1 and f"kept at {kept[0] / 'jobstore'}" in out.stderr
    out = fntree_cli("run", "boom.py:boom", "1", "--jobstore", str(project / "s1"),
                     cwd=project, FNTREE_PROFILE="cluster", FNTREE_RETRY_COUNT="2")
    assert attempts(out) == "3"
    out = fntree_cli("run", "boom.py:boom", "1", "--jobstore", str(project / "s2"),
                     "--retry-count", "0", cwd=project, FNTREE_RETRY_COUNT="2")
    assert attempts(out) == "1"


@pytest.mark.parametrize(("text", "words"), [
    ("[tool.fntree]\nmax_jobs = 3\n", "unknown key 'max_jobs'; write it max-jobs"),
    ("[tool.fntree]\nbatch = 'slurm'\n", "unknown key 'batch'; known keys: batch-system"),
    ("[tool.fntree]\nmax-jobs = 'ten'\n", "max-jobs = 'ten' must be a whole number"),
    ("[tool.fntree.profiles.cluster]\nretry-count = true\n",
     "[profiles.cluster]: retry-count = True must be a whole number"),
    ("[tool.fntree]\nlog-level = 'LOUD'\n", "log_level='LOUD' is not a logging level"),
    ("[tool.fntree\n", "cannot read the config file"),
])
def test_bad_config_is_refused_naming_file_and_key(tmp_path: Path, text: str,
                                                  words: str) -> None:
    """An unknown key, a wrong type or a bad TOML file: exit 2 naming the file; no store."""
    (tmp_path / "pyproject.toml").write_text(text)
    (tmp_path / "boom.py").write_text(SCRIPT)
    profile = ["--profile", "cluster"] if "profiles" in text else []
    for argv in (["config"], ["run", "boom.py:boom", "1", "--jobstore", "s"]):
        out = fntree_cli(*argv, *profile, cwd=tmp_path)
        assert out.returncode == 2, out.stderr
        assert words in out.stderr and str(tmp_path / "pyproject.toml") in out.stderr
        assert "Traceback" not in out.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(("name", "content", "words"), [
    ("fntree.toml", b"\xff\xfe max-jobs = 3\n", "cannot read the config file"),
    ("fntree.toml", None, "Is a directory"),
    ("pyproject.toml", b"tool = 3\n", "tool = 3 is not a table"),
    ("pyproject.toml", b"[tool]\nfntree = 3\n", "[tool.fntree] is not a table; write it "
     "as a [tool.fntree] table"),
])
def test_a_damaged_config_file_is_refused_never_skipped(tmp_path: Path, name: str,
                                                        content: bytes | None,
                                                        words: str) -> None:
    """A config file that is not UTF-8, is a directory or holds a `tool` that is not a table:
    exit 2 naming the file, no traceback, no store (it is never silently passed over)."""
    if content is None:
        (tmp_path / name).mkdir()
    else:
        (tmp_path / name).write_bytes(content)
    (tmp_path / "boom.py").write_text(SCRIPT)
    for argv in (["config"], ["run", "boom.py:boom", "1", "--jobstore", "s"]):
        out = fntree_cli(*argv, cwd=tmp_path)
        assert out.returncode == 2, out.stderr
        assert words in out.stderr and str(tmp_path / name) in out.stderr
        assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    assert not (tmp_path / "s").exists()


def test_unknown_profile_names_the_known_ones(project: Path) -> None:
    """A profile no file defines is refused with the profiles there are."""
    out = fntree_cli("config", cwd=project, FNTREE_PROFILE="gpu")
    assert out.returncode == 2
    assert "there is no profile 'gpu' (chosen by $FNTREE_PROFILE); known profiles: " \
        "cluster" in out.stderr


def test_default_resources_reach_the_jobs_that_declare_none(tmp_path: Path) -> None:
    """default-time and default-memory are what undeclared jobs get; a declaration wins."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.fntree]\ndefault-time = "2h"\ndefault-memory = 300000000\n')
    (tmp_path / "given.py").write_text(textwrap.dedent("""
        import fntree

        @fntree.target
        def given() -> tuple:
            return (fntree.context().time, fntree.context().memory)

        @fntree.target(memory=200_000_000)
        def declared() -> tuple:
            return (fntree.context().time, fntree.context().memory)

        @fntree.target
        def both() -> object:
            return fntree.children(given(), declared())
    """))
    rows = shown(fntree_cli("config", cwd=tmp_path))
    assert rows["default-time"][0] == "7200.0" and rows["default-memory"][0] == "300000000"
    out = fntree_cli("run", "given.py:both", "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[(7200.0, 300000000), (7200.0, 200000000)]"
    out = fntree_cli("config", cwd=tmp_path, FNTREE_DEFAULT_TIME="soon")
    assert out.returncode == 2 and "$FNTREE_DEFAULT_TIME = 'soon'" in out.stderr
    out = fntree_cli("run", "given.py:both", "--no-progress", "--default-time", "90s",
                     "--default-memory", "1G", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[(90.0, 1073741824), (90.0, 200000000)]"
    out = fntree_cli("run", "given.py:both", "--default-memory", "lots", cwd=tmp_path)
    assert out.returncode == 2 and "default_memory='lots'" in out.stderr
    assert "job store" not in out.stderr  # refused before one was made


def test_default_resources_as_keyword_arguments(tmp_path: Path) -> None:
    """fntree.run(default_time=..., default_memory=...) converts and checks them."""
    import config_workflows as cw

    import fntree

    assert fntree.run(cw.undeclared(), jobstore=tmp_path / "a", default_time="1m",
                      default_memory="2G") == (60.0, 2 * 2**30)
    with pytest.raises(fntree.ResourceError, match="default_time='soon' is not a duration"):
        fntree.run(cw.undeclared(), jobstore=tmp_path / "b", default_time="soon")
    assert not (tmp_path / "b").exists()


def test_restart_keeps_recorded_options_unless_a_profile_is_named(project: Path) -> None:
    """A restart ignores the file's defaults, but `--profile` applies over the recorded."""
    def attempts(out: subprocess.CompletedProcess[str]) -> str:
        assert out.returncode == 1, out.stderr
        made = project / "attempts"
        count = made.read_text()
        made.unlink()
        return str(len(count))

    store = str(project / "s")
    out = fntree_cli("run", "boom.py:boom", "1", "--jobstore", store, cwd=project)
    assert attempts(out) == "1"  # retry-count 0 from the file
    (project / "pyproject.toml").write_text(PYPROJECT.replace("retry-count = 0",
                                                              "retry-count = 2"))
    assert attempts(fntree_cli("restart", store, cwd=project)) == "1"  # the recorded 0
    out = fntree_cli("restart", store, "--profile", "cluster", cwd=project)
    assert attempts(out) == "2"  # the profile's retry-count 1
