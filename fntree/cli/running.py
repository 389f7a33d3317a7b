"""`fntree run` and `fntree restart`: start or continue a workflow, with live progress."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import shlex
import sys
import traceback
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console
from rich.markup import escape

import fntree
from fntree.api import loading_script
from fntree.debug import debug_command
from fntree.dsl import Target
from fntree.environment import parse_assignments
from fntree.errors import FntreeError, WorkflowFailed
from fntree.runtime.events import Observer

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


def add_parser(sub: Any) -> None:
    """Declare `run` and `restart`."""
    run = sub.add_parser("run", help="run a target as a new workflow")
    run.add_argument("entry", metavar="SCRIPT.py:FUNC",
                     help="the target to run: a script path or module name, a colon, a name")
    run.add_argument("args", nargs="*", metavar="ARG",
                     help="arguments for FUNC, converted by its annotations")
    fntree.add_arguments(run)
    run.add_argument("--no-progress", action="store_true", help="no live progress display")
    run.set_defaults(command=_run)

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


def _observers(args: argparse.Namespace, console: Console) -> list[Observer]:
    """The live display on a terminal, progress lines otherwise; none with --no-progress."""
    if args.no_progress:
        return []
    from fntree.progress import LiveProgress, PlainProgress

    return [LiveProgress(console) if console.is_terminal else PlainProgress(console)]


def _run(args: argparse.Namespace, console: Console) -> int:
    if not args.jobstore:
        raise FntreeError("fntree run needs --jobstore DIR, a new directory that will hold the "
                          "run's state so that it can be restarted")
    target = load_target(args.entry)
    call = target(*convert_arguments(target, args.args))
    value = fntree.run(call, options=args, observers=_observers(args, console))
    _print_value(value)
    return 0


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


def convert_arguments(target: Target, raw: list[str]) -> list[Any]:
    """`raw` strings converted by the annotations of `target`'s parameters."""
    parameters = [p for p in inspect.signature(target.fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    try:
        hints = typing.get_type_hints(target.fn)
    except Exception:
        hints = {}
    if len(raw) > len(parameters):
        raise FntreeError(f"{target.name} takes {len(parameters)} argument(s), but "
                          f"{len(raw)} were given")
    missing = [p.name for p in parameters[len(raw):] if p.default is p.empty]
    if missing:
        raise FntreeError(f"{target.name} needs a value for {', '.join(missing)}; give "
                          "its arguments after SCRIPT.py:FUNC, in order")
    return [_convert(target.name, p.name, hints.get(p.name, str), text)
            for p, text in zip(parameters, raw, strict=False)]


def _convert(target: str, name: str, kind: Any, text: str) -> Any:
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError(f"not one of {sorted(_TRUE | _FALSE)}")
            return lowered in _TRUE
        if kind in (int, float, str, Path):
            return kind(text)
    except ValueError as exc:
        raise FntreeError(f"argument {name} of {target} must be of type {kind.__name__}, not "
                          f"{text!r} ({exc})") from exc
    return text


def report_failure(console: Console, exc: WorkflowFailed) -> None:
    console.print(f"[bold red]fntree: {len(exc.failed)} job(s) failed[/]")
    for job in exc.failed:
        console.rule(f"{job.name} {job.job_id} — {job.attempts} attempt(s)")
        console.print(job.message, markup=False)
        if job.log_path:
            console.print(f"log: {job.log_path}", markup=False)
        console.print(f"debug it: {debug_command(exc.jobstore, job.job_id)}", markup=False)
    console.print("Fix the cause, then continue with: "
                  f"[bold]fntree restart {escape(shlex.quote(str(exc.jobstore)))}[/]")
