"""One job of a shell target, start to end (its steps are listed in fntree/shell_target.py)."""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fntree import shell_cache
from fntree.runtime import context
from fntree.shell_outputs import OutputError, Outputs
from fntree.shell_run import environment, run_command, shown
from fntree.shell_target import CommandError, resource_fields

if TYPE_CHECKING:
    from fntree.shell_target import ShellTarget

Command = str | list[str]


def run_job(target: ShellTarget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run the body, then its command; commit the outputs; the job's value."""
    spec = target.spec
    ctx = context.running()
    try:
        bound = inspect.signature(target.fn).bind(*args, **kwargs)
    except TypeError as exc:
        raise CommandError(f"target `{target.name}` was called with arguments that do not "
                           f"fit its parameters ({exc}); fix the call") from None
    bound.apply_defaults()
    own_staging = None
    if ctx is not None:
        staging = ctx.local_temp_dir / "outputs"
    else:  # run outside a worker (a test calling invoke): a temp dir of its own
        staging = own_staging = Path(tempfile.mkdtemp(prefix="fntree-shell-"))
    try:
        outputs = Outputs.stage(spec.outputs, bound.arguments, staging)
        command = _command(target.name, target.fn(*bound.args, **bound.kwargs))
        return _run(target, command, outputs, bound.arguments, ctx)
    finally:
        if own_staging is not None:
            shutil.rmtree(own_staging, ignore_errors=True)


def _run(target: ShellTarget, command: Command, outputs: Outputs, arguments: dict[str, Any],
         ctx: context.Context | None) -> Any:
    spec = target.spec
    lookup = None
    if spec.cache:
        lookup = shell_cache.lookup(_as_final(command, outputs), spec.version,
                                    arguments, outputs, spec.capture)
        if lookup is not None and lookup.hit:
            if ctx is not None:
                ctx.cached = True  # counted as cached, as a pure target's hit is
            return lookup.value
    fields = resource_fields(ctx)
    try:
        stdout = run_command(command, environment(ctx, fields), spec.capture)
        missing = outputs.missing()
        if missing:
            raise OutputError(
                f"the command succeeded but did not write its declared output(s) "
                f"{', '.join(missing)}: {shown(command)}; it must write each output at the "
                "path the body was given for it (the argument's value), not elsewhere")
    except BaseException:
        outputs.discard()
        raise
    outputs.commit()
    value = stdout if spec.capture else outputs.value()
    if lookup is not None:
        lookup.store(value, outputs)
    return value


def _command(name: str, returned: Any) -> Command:
    """The command the body returned, checked: a non-empty string or argv list."""
    if isinstance(returned, str):
        if not returned.strip():
            raise CommandError(f"shell target `{name}` returned an empty command; return a "
                               "command string (fntree.sh(...)) or an argv list")
        return returned
    if isinstance(returned, (list, tuple)) and returned:
        argv = []
        for item in returned:
            if not isinstance(item, (str, os.PathLike, int, float)) or isinstance(item, bool):
                raise CommandError(f"shell target `{name}` returned an argv list holding a "
                                   f"{type(item).__name__} ({item!r}); give strings, paths "
                                   "or numbers")
            argv.append(os.fspath(item) if isinstance(item, os.PathLike) else str(item))
        return argv
    what = ("nothing (None: does its body end without `return`?)" if returned is None
            else f"a value of type {type(returned).__name__} ({returned!r:.60})")
    raise CommandError(f"shell target `{name}` returned {what}, not a command; return a "
                       "string (run by bash, build it with fntree.sh to quote values) or a "
                       "list of arguments (run without a shell)")


def _as_final(command: Command, outputs: Outputs) -> Sequence[str]:
    """The command with each output's temporary path replaced by its final one (the cache's
    view: the temporary paths change from run to run)."""
    words = [command] if isinstance(command, str) else list(command)
    for temp, final in zip(outputs.temps, outputs.finals, strict=True):
        words = [w.replace(str(temp), str(final)) for w in words]
    return words if not isinstance(command, str) else ["bash", *words]
