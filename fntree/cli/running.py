"""`fntree run` and `fntree restart`: start or continue a workflow, with live progress."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import shlex
import shutil
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape

import fntree
from fntree import api
from fntree.api import loading_script
from fntree.cli.arguments import ArgumentsError, bind, parameters
from fntree.cli.target_help import target_help
from fntree.config import settings, temporary_store
from fntree.debug import debug_command
from fntree.dsl import Target
from fntree.environment import parse_assignments
from fntree.errors import FntreeError, WorkflowFailed
from fntree.runtime.events import Observer


def add_parser(sub: Any) -> None:
    """Declare `run` and `restart`."""
    run = sub.add_parser(
        "run", help="run a target as a new workflow", add_help=False, allow_abbrev=False,
        description="Run FUNC as a new workflow. Without --jobstore the job store is a "
        "temporary one (under the configured jobstore-root, else the system's temporary "
        "directory): removed when the run succeeds, kept with its path printed when it "
        "fails or is interrupted, for `fntree restart`.",
        epilog="`fntree run SCRIPT.py:FUNC --help` lists FUNC's own arguments.")
    run.add_argument("-h", "--help", action="store_true",
                     help="show this help, or with SCRIPT.py:FUNC that target's arguments")
    run.add_argument("entry", nargs="?", metavar="SCRIPT.py:FUNC",
                     help="the target to run: a script path or module name, a colon, a name")
    run.add_argument("args", nargs=argparse.REMAINDER, metavar="ARG",
                     help="arguments for FUNC, by position or as --name VALUE, converted by "
                     "its annotations (see SCRIPT.py:FUNC --help)")
    _run_options(run)
    run.set_defaults(command=_run, run_parser=run)

    restart = sub.add_parser("restart", help="continue a stopped or failed run")
    restart.add_argument("jobstore", metavar="DIR")
    options_without_jobstore(restart)
    restart.add_argument("--no-progress", action="store_true", help="no live progress display")
    restart.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                         help="set an environment variable of the run's jobs from now on "
                         "(repeatable; recorded in the job store)")
    restart.add_argument("--env-unset", dest="env_unset", action="append", default=[],
                         metavar="NAME", help="remove an environment variable of the run's "
                         "jobs from now on (repeatable)")
    restart.add_argument("--rerun-changed", dest="rerun_changed", action="store_true",
                         help="start the run again from its root with the current code (even "
                         "a completed run): pure targets' calls found in the run's cache are "
                         "not run again, every other job is; the value is a fresh run's")
    restart.set_defaults(command=_restart)


def options_without_jobstore(parser: argparse.ArgumentParser) -> None:
    """fntree's run options, for commands that take the job store as a positional DIR."""
    scratch = argparse.ArgumentParser(add_help=False)
    fntree.add_arguments(scratch)
    group = parser.add_argument_group("fntree")
    for action in scratch._actions:
        if action.dest not in ("jobstore", "help"):
            group._add_action(action)


def _run_options(parser: argparse.ArgumentParser) -> None:
    fntree.add_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no live progress display")


def _observers(args: argparse.Namespace, console: Console) -> list[Observer]:
    """The live display on a terminal, progress lines otherwise; none with --no-progress."""
    if args.no_progress:
        return []
    from fntree.progress import LiveProgress, PlainProgress
    from fntree.progress.quiet import QuietProgress

    if args.quiet:
        return [QuietProgress(console)]

    return [LiveProgress(console) if console.is_terminal else PlainProgress(console)]


def _run(args: argparse.Namespace, console: Console) -> int:
    """Everything is checked before the job store is made: the target, its arguments
    (fntree/cli/arguments.py), then fntree's options (in `fntree.run`)."""
    tokens, wants_help = _take_fntree_options(args)
    if args.entry is None:
        if wants_help:
            print(args.run_parser.format_help(), end="")
            return 0
        raise ArgumentsError("fntree run needs the target to run, SCRIPT.py:FUNC; see "
                             "`fntree run --help`")
    target = load_target(args.entry)
    params = parameters(target)
    if wants_help:
        print(target_help(args.entry, target, params, _fntree_help()), end="")
        return 0
    positional, keywords = bind(target, params, tokens, args.entry)
    call = target(*positional, **keywords)
    observers = _observers(args, console)
    if args.jobstore:
        _print_value(fntree.run(call, options=args, observers=observers))
        return 0
    _print_value(_run_in_temporary_store(call, args, observers, console))
    return 0


def _run_in_temporary_store(call: Any, args: argparse.Namespace, observers: list[Observer],
                            console: Console) -> Any:
    """`fntree.run` in a new temporary job store: removed on success, kept (its path said)
    when the run fails or is interrupted, removed with nothing said when nothing started."""
    store = temporary_store(settings(api.DEFAULTS, {}, args)["jobstore_root"].value)
    parent = store.parent
    args.jobstore = str(store)  # named by the restart hint of an interrupt
    try:
        value = fntree.run(call, options=args, observers=observers)
    except BaseException as exc:
        if not os.path.lexists(args.jobstore):
            shutil.rmtree(parent, ignore_errors=True)
        elif not isinstance(exc, KeyboardInterrupt):  # whose message names it already
            console.print(f"fntree: the run's temporary job store is kept at {args.jobstore} "
                          "for `fntree restart`; `fntree clean` removes it", markup=False)
        raise
    shutil.rmtree(parent, ignore_errors=True)
    return value


def _take_fntree_options(args: argparse.Namespace) -> tuple[list[str], bool]:
    """Set on `args` fntree's own options found among FUNC's arguments (`fntree run
    s.py:f 3 --jobstore d`); FUNC's tokens, and whether help was asked for."""
    parser = _OptionsParser(add_help=False, allow_abbrev=False)
    _run_options(parser)
    table = {s: a for a in parser._actions for s in a.option_strings}
    own: list[str] = []
    rest: list[str] = []
    wants_help = bool(args.help)
    tokens = list(args.args or [])
    while tokens:
        token = tokens.pop(0)
        if token == "--":
            rest += [token, *tokens]
            break
        option, has_value, _ = token.partition("=")
        if token in ("-h", "--help"):
            wants_help = True
        elif option in table:
            own.append(token)
            if table[option].nargs != 0 and not has_value and tokens:
                own.append(tokens.pop(0))
        else:
            rest.append(token)
    found = parser.parse_args(own)
    for action in parser._actions:
        value = getattr(found, action.dest)
        if value != action.default:
            setattr(args, action.dest, value)
    return rest, wants_help


class _OptionsParser(argparse.ArgumentParser):
    """fntree's options given after SCRIPT.py:FUNC; a bad one is an ArgumentsError."""

    def error(self, message: str) -> NoReturn:
        raise ArgumentsError(f"{message}; see `fntree run --help`")


def _fntree_help() -> str:
    parser = argparse.ArgumentParser(prog="fntree run", add_help=False,
                                     usage=argparse.SUPPRESS)
    _run_options(parser)
    return parser.format_help()


def _restart(args: argparse.Namespace, console: Console) -> int:
    value = fntree.restart(args.jobstore, options=args, observers=_observers(args, console),
                           env=parse_assignments(args.env), env_unset=args.env_unset,
                           rerun_changed=args.rerun_changed)
    _print_value(value)
    return 0


def _print_value(value: Any) -> None:
    if value is not None:
        print(repr(value))


def load_target(entry: str) -> Target:
    """The target named by `SCRIPT.py:FUNC` or `package.module:FUNC`."""
    where, sep, name = entry.rpartition(":")
    if not sep or not where or not name:
        raise FntreeError(f"{entry!r} does not name a target; write SCRIPT.py:FUNC or "
                          "module:FUNC")
    path = Path(where)
    try:
        module = _load_script(path) if where.endswith(".py") or path.is_file() else \
            importlib.import_module(where)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (where == exc.name or where.startswith(exc.name + ".")):
            raise _import_failed(where, exc) from None  # the module imports a missing one
        raise FntreeError(f"cannot import {where!r} ({exc}); check the name, or give a "
                          "script path ending in .py") from None
    except FntreeError:
        raise
    except Exception as exc:
        raise _import_failed(where, exc) from None
    found = getattr(module, name, None)
    if not isinstance(found, Target):
        what = "nothing" if found is None else f"a {type(found).__name__}"
        raise FntreeError(f"{name} in {where} is {what}, not an @fntree.target function")
    return found


def _load_script(path: Path) -> ModuleType:
    if not path.is_file():
        raise FntreeError(f"there is no script {path}; check the path")
    _refuse_shadowing(path)
    directory = str(path.resolve().parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    with loading_script(str(path)):  # a module-level fntree.run is refused
        spec.loader.exec_module(module)
    return module


def _refuse_shadowing(path: Path) -> None:
    """A script named like a module that is imported already cannot be loaded under its name.

    Loaded as `random`, random.py would replace the standard library's module here, and
    its targets, sent to workers by that name, would be looked up in the real one there.
    """
    name = path.stem
    module = sys.modules.get(name)
    where = getattr(module, "__file__", None)
    if module is None and name not in sys.stdlib_module_names:
        return
    if where is not None and Path(where).resolve() == path.resolve():
        return
    what = ("the standard library's module" if name in sys.stdlib_module_names else
            "the module")
    raise FntreeError(f"the script {path} is named like {what} `{name}`, which fntree and "
                      "its workers import too, so its targets cannot be found by that name; "
                      f"rename it (e.g. to {name}_pipeline.py), or run it with `python {path}` "
                      "and `fntree.run` in its `if __name__ == '__main__':` block")


def _import_failed(where: str, exc: Exception) -> FntreeError:
    """The message for a script or module whose own code failed as it was imported."""
    if isinstance(exc, SyntaxError):
        line = (exc.text or "").strip()
        return FntreeError(f"{exc.filename or where}, line {exc.lineno}: {exc.msg}"
                           + (f": {line}" if line else "") + "; fix it and run again")
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<frozen")]
    at = f" at {frames[-1].filename}, line {frames[-1].lineno}" if frames else ""
    return FntreeError(f"importing {where} raised {type(exc).__name__}: {exc}{at}; fix its "
                       "module-level code and run again")


def report_failure(console: Console, exc: WorkflowFailed, kinds: int = 10) -> None:
    """The summary of a failed run: identical failures grouped, each kind with the log and
    the debug command of one of its jobs, then the restart command."""
    groups = exc.groups()
    console.print(f"[bold red]fntree: {len(exc.failed)} job(s) failed[/]"
                  + (f", {len(groups)} kinds of failure" if len(groups) > 1 else ""))
    for group in groups[:kinds]:
        job = group.jobs[0]
        console.print(group.headline(), style="bold", markup=False)
        if job.log_path:
            console.print(f"    log: {job.log_path}", markup=False)
        console.print(f"    debug it: {debug_command(exc.jobstore, job.job_id)}", markup=False)
    if len(groups) > kinds:
        console.print(f"… and {len(groups) - kinds} more kinds: `fntree status "
                      f"{escape(shlex.quote(str(exc.jobstore)))}` lists every failed job")
    console.print("Fix the cause, then continue with: "
                  f"[bold]fntree restart {escape(shlex.quote(str(exc.jobstore)))}[/]")
