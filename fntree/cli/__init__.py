"""The `fntree` command. Each subcommand is one module of this package with two
functions: `add_parser(subparsers)` declares it (setting `command` to the function
that carries it out) and that function, `(args, console) -> exit status`.

Exit status: 0 on success, 1 when jobs failed or the run is not complete (the
summary ends with the exact restart command), 2 for a usage or job store error,
3 for a bug in fntree, 130 when interrupted (`RunInterrupted`: the restart command, no
traceback), 141 when the reader of its output went away (as `| head` does; nothing
more is printed).

`main` is the one place where errors become messages: a `FntreeError` prints
its text (the fact, then the remedy); an `OSError` that no layer below turned
into one prints its text and what to check; anything else is a bug in fntree,
reported in one line that names the file holding its full traceback. No
command ends in a raw traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import traceback

from rich.console import Console
from rich.markup import escape

from fntree._imports import standard_library_first
from fntree.errors import FntreeError, WorkflowFailed

# Each command: its name, the module that declares and carries it out, and its line in
# `fntree --help`, in that order. Only the module of the command given is imported (the
# leader's side for `run`, rich tables for `status`...); the others are named by this
# table alone, which tests/test_attack_cli.py holds to what the modules declare.
COMMANDS = (
    ("run", "running", "run a target as a new workflow"),
    ("restart", "running", "continue a stopped or failed run"),
    ("status", "status", "what a run has done and what is left"),
    ("check", "check", "verify a job store's integrity"),
    ("stats", "stats", "where a run's time went, per target"),
    ("timeline", "timeline", "write a run's timeline as an HTML page"),
    ("logs", "logs", "a job's whole kept log, or the failed jobs' logs"),
    ("debug-job", "debug_job", "run one job of a stopped run again, here, recording nothing"),
    ("kill", "kill", "stop the leader running on a job store, and its jobs"),
    ("clean", "clean", "remove a job store (not while a leader runs on it)"),
    ("cache", "cache", "what a cache across runs holds; prune it"),
    ("config", "config", "show the options a new run would use, and where each comes from"),
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    console = _StderrConsole(stderr=True, highlight=False, soft_wrap=True)
    try:
        status = int(args.command(args, console))
        sys.stdout.flush()  # here, so that a reader gone away is seen below, not at exit
        return status
    except WorkflowFailed as exc:
        from fntree.cli.running import report_failure

        report_failure(console, exc)
        return 1
    except FntreeError as exc:
        console.print(f"[bold red]fntree: error:[/] {escape(str(exc))}", markup=True)
        return 2
    except KeyboardInterrupt as exc:
        if args.command.__module__ != "fntree.cli.running":  # a reader: nothing to continue
            console.print("[yellow]fntree: interrupted[/]")
            return 130
        store = getattr(exc, "jobstore", None) or getattr(args, "jobstore", None) or "DIR"
        console.print(f"[yellow]fntree: interrupted; workers stopped. Continue with "
                      f"`fntree restart {escape(str(store))}`[/]")
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except SystemExit as exc:  # rich's stdout console, whose reader went away, exits 1
        if exc.code == 1 and _stdout_is_devnull():  # (Console.on_broken_pipe)
            return 141
        raise
    except OSError as exc:
        where = _save_traceback()
        console.print(f"fntree: error: {exc}; check that path (does it exist, is it the "
                      "right kind of file, may you write there, is its disk full?) and try "
                      f"again. The full traceback is in {where}", markup=False)
        return 2
    except Exception as exc:
        where = _save_traceback()
        console.print(f"fntree: internal error: {type(exc).__name__}: {exc}. This is a bug "
                      f"in fntree; please report it with the full traceback, which is in "
                      f"{where}", markup=False)
        return 3


class _StderrConsole(Console):
    """The console of messages and progress: if its reader goes away, it falls silent
    and the command goes on (rich would exit, and cut a run short)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True


def _silence_stdout() -> None:
    """Send what is left of stdout to /dev/null, so that exiting does not raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def _stdout_is_devnull() -> bool:
    """Whether stdout now goes to /dev/null, as rich points it when its reader went away."""
    try:
        out, null = os.fstat(sys.stdout.fileno()), os.stat(os.devnull)
    except (OSError, ValueError):
        return False
    return (out.st_dev, out.st_ino) == (null.st_dev, null.st_ino)


def _save_traceback() -> str:
    """The path of a new private file holding the traceback being handled.

    When no such file can be written, the traceback goes to stderr instead.
    """
    text = traceback.format_exc()
    try:
        fd, path = tempfile.mkstemp(prefix="fntree-traceback-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(text)
    except OSError:
        sys.stderr.write(text)
        return "the lines above"
    return path


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser of `fntree`: in full for the command `argv` names (every command when
    `argv` is None), and each other command by its name and help line only."""
    parser = argparse.ArgumentParser(prog="fntree",
                                     description="Run, watch and debug fntree workflows.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    given = _command_named(argv)
    modules = [module for name, module, _ in COMMANDS if argv is None or name == given]
    for module_name in dict.fromkeys(modules):
        with standard_library_first():  # the leader's side, which `import fntree` is not
            module = importlib.import_module(f"fntree.cli.{module_name}")
        module.add_parser(sub)
    for name, _, help_line in COMMANDS:
        if name not in sub.choices:
            sub.add_parser(name, help=help_line)
    return parser


def _command_named(argv: list[str] | None) -> str | None:
    """The command `argv` gives: its first word (`fntree` itself takes no option but -h)."""
    for word in argv or ():
        return None if word.startswith("-") else word
    return None


if __name__ == "__main__":
    sys.exit(main())
