"""`import fntree`, whose leader's side is imported on first use, attacked as a newcomer would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fntree


def test_a_misspelt_attribute_names_the_close_public_one() -> None:
    """`fntree.tagret` raises an AttributeError whose traceback suggests `target`, and
    `fntree.rn` one that suggests the lazily imported `run` (the error named neither)."""
    for typo, meant in (("tagret", "target"), ("rn", "run")):
        done = subprocess.run([sys.executable, "-c", f"import fntree; fntree.{typo}"],
                              capture_output=True, text=True, timeout=120)
        assert f"has no attribute {typo!r}. Did you mean: {meant!r}?" in done.stderr
    with pytest.raises(AttributeError) as caught:
        fntree.tagret  # the attribute access is the test
    assert caught.value.name == "tagret" and caught.value.obj is fntree


def test_star_import_and_dir_give_every_public_name() -> None:
    """`from fntree import *` binds every name of `__all__`, the lazy ones included, and
    `dir(fntree)` lists them before their first use."""
    done = subprocess.run([sys.executable, "-c",
                           "import fntree\nlisted = set(dir(fntree))\n"
                           "from fntree import *\n"
                           "print(all(n in globals() for n in fntree.__all__), "
                           "set(fntree.__all__) <= listed)"],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "True"], done.stderr


EDITABLE_FINDER = any("editable" in str(finder).lower() for finder in sys.meta_path)


@pytest.mark.xfail(EDITABLE_FINDER, strict=True, reason=(
    "fntree installed editable by setuptools' finder (pip install -e): the finder comes after "
    "the path finder on sys.meta_path, so a folder `fntree/` beside the script (no "
    "__init__.py) becomes a namespace package and `import fntree` never runs fntree's code; "
    "only the packaging can fix it (editable_mode=compat, or a src/ layout)"))
def test_a_folder_named_fntree_beside_a_script_does_not_hide_fntree(tmp_path: Path) -> None:
    """`python script.py` beside a folder named `fntree` (holding the user's own files) runs
    fntree's run, or says what to do, never `module 'fntree' has no attribute 'target'`."""
    (tmp_path / "fntree").mkdir()
    (tmp_path / "fntree" / "notes.py").write_text("x = 1\n")
    (tmp_path / "script.py").write_text(
        "import fntree\n\n@fntree.target\ndef one() -> int:\n    return 1\n\n"
        "if __name__ == '__main__':\n    print(fntree.run(one(), jobstore='store'))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as a user runs it
    done = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.stdout.strip() == "1" or "rename" in done.stderr.lower(), done.stderr


def test_a_type_checker_sees_the_lazy_names_and_flags_a_misspelt_one(tmp_path: Path) -> None:
    """mypy on a script that uses fntree sees `fntree.run`'s signature (imported on first use)
    and flags `fntree.tagret` (a module __getattr__ visible to it made every name Any)."""
    script = tmp_path / "user.py"
    script.write_text("import fntree\nreveal_type(fntree.run)\nfntree.tagret\n")
    root = str(Path(fntree.__file__).parent.parent)
    done = subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent",
                           "--cache-dir", str(tmp_path / "cache"), str(script)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MYPYPATH": root})
    assert 'Revealed type is "def (call: fntree.dsl.Call' in done.stdout, done.stdout
    assert 'Module has no attribute "tagret"' in done.stdout, done.stdout
