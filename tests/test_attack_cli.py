"""The `fntree` command's start-up attacked: each command imports only what it needs, and the
help of the commands it does not import still says what their modules declare."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import fntree
from fntree.cli import COMMANDS, build_parser


def _helps(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {action.dest: action.help for action in sub._choices_actions}


def test_the_table_of_commands_says_what_their_modules_declare() -> None:
    """`fntree --help`, which imports no command's module, lists every command with the help
    line its module declares, in the table's order."""
    full, light = _helps(build_parser()), _helps(build_parser(["--help"]))
    assert light == full
    assert list(light) == [name for name, _, _ in COMMANDS]
    for name, _, _ in COMMANDS:  # each declared in full, beside the others' names
        assert _helps(build_parser([name, "DIR"])) == full


def test_status_imports_neither_the_leader_nor_the_other_commands(tmp_path: Path) -> None:
    """`fntree status DIR` imports the job store and its own module, never the leader's side
    (fntree.api, the batch systems' submission) nor the modules of `run`, `timeline`, `cache`
    (it imported every command's module, about 0.3 s of CPU more at each call)."""
    store = tmp_path / "store"
    assert fntree.run(fntree_leaf(), jobstore=store) == 1
    code = ("import sys\nfrom fntree.cli import main\n"
            f"code = main(['status', {str(store)!r}])\n"
            "print(code, *sorted(sys.modules), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    code, *modules = done.stderr.split()
    assert code == "0", done.stderr
    imported = set(modules)
    assert "fntree.cli.status" in imported
    assert not imported & {"fntree.api", "fntree.cli.running", "fntree.cli.timeline",
                           "fntree.cli.cache", "fntree.runtime.leader"}, imported


@fntree.target
def one() -> int:
    return 1


def fntree_leaf() -> fntree.Call:
    return one()
