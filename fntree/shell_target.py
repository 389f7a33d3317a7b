"""External tools as targets: `@fntree.shell` and `fntree.sh` (docs/shell.md).

A shell target is a `Target` whose body returns a command instead of a value:
a string, run by `bash -euo pipefail -c`, or an argv list, run without a shell.
`sh(template, **values)` builds such a string with every value quoted
(`shlex.quote`; a list or tuple becomes its items, each quoted), so a path with
spaces, quotes, `;` or `$()` reaches the tool as one word and cannot inject.
The job's granted resources fill `{cpu}` and `{memory_mb}` unless given.

What a job of a shell target does, in order (`ShellTarget.invoke`, in the
worker, through the compiler's `execute` hook, so `fntree debug-job` does the
same in the foreground):

1. binds its arguments; each declared output (`outputs=`: the name of a
   parameter, whose argument is the output's path, or a literal path) gets a
   temporary path in the job's local temp dir, which the body sees in the
   parameter's place (fntree/shell_outputs.py);
2. runs the body, which returns the command;
3. with `cache=True` and a cache directory, looks the command up
   (fntree/shell_cache.py): a hit whose outputs are present and unchanged is
   the job's value, and nothing runs;
4. runs the command (fntree/shell_run.py): stdout and stderr into the job's
   log, the resources in its environment; a non-zero exit or a signal raises
   `CommandFailed` with the status, the command and the end of its stderr;
5. only then renames each output into place. A command killed or failed
   leaves no output under its final name; a kill between two renames leaves
   each output whole or absent, and the job runs again.

The value is the output's path (a tuple of paths for several, None for none),
or the command's standard output as text with `capture=True` (bounded).

No process outlives its job: the command runs as a descendant of the worker,
which is a child subreaper and kills its whole tree after each job, and which
carries the marks the leader and the guard sweep when a worker or the leader
dies (fntree/batch/proctree.py).
"""

from __future__ import annotations

import inspect
import math
import shlex
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from fntree.dsl import Target, target
from fntree.errors import FntreeError, ResourceError
from fntree.runtime import context

CAPTURE_LIMIT = 1 << 20  # bytes of stdout kept by capture=True


class CommandError(FntreeError, ValueError):
    """A shell target's command cannot be made (a bad template, a bad return value)."""


@attrs.frozen
class ShellSpec:
    """What a shell target declares beyond its resources."""

    outputs: tuple[str, ...] = ()
    capture: int = 0  # bytes of stdout to keep as the value; 0: not captured
    version: str | None = None  # the tool's version, for the cache key
    cache: bool = False


class ShellTarget(Target):
    """A target whose body returns a command (see the module's docstring)."""

    spec = ShellSpec()

    @property
    def declared(self) -> tuple[Any, ...]:
        """What the code hash covers beside the body (fntree/identity.py): a change of
        outputs, capture or tool version is a change of the target."""
        return (self.spec.outputs, self.spec.capture, self.spec.version)

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        from fntree.shell_job import run_job

        return run_job(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<fntree shell target {self.name}>"


def shell(*args: Any, outputs: Sequence[str] | str = (), capture: bool | int = False,
          version: str | None = None, cache: bool = False, time: Any = None,
          memory: Any = None, cpu: Any = 1, retries: Any = None, name: str | None = None,
          slurm_args: Any = None) -> Any:
    """Make a function whose body returns a command a target: `@fntree.shell(time, memory,
    cpu, outputs=, capture=, version=, cache=, ...)`.

    `outputs` names the files the command writes: a parameter's name (its argument is
    the path; the body gets a temporary path in its place) or a literal path. They are
    renamed into place only when the command succeeds. `capture=True` (or a number of
    bytes) makes the command's stdout the value. `cache=True` caches the job on its
    command, the tool's identity (`version=`, or its executable's path, size and
    mtime) and its path arguments' content. The other parameters are `@fntree.target`'s.
    """
    if len(args) == 1 and callable(args[0]) and not isinstance(args[0], Target):
        return shell()(args[0])
    make = target(*args, time=time, memory=memory, cpu=cpu, retries=retries, name=name,
                  slurm_args=slurm_args)
    spec = ShellSpec(_outputs(outputs), _capture(capture), _version(version), _cache(cache))

    def decorate(fn: Callable[..., Any]) -> ShellTarget:
        plain: Target = make(fn)
        made = ShellTarget(plain.fn, plain.name, plain.resources)
        made.spec = spec
        _check_signature(fn)
        return made

    return decorate


def _outputs(outputs: Sequence[str] | str) -> tuple[str, ...]:
    items = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    for item in items:
        if not isinstance(item, str) or not item:
            raise ResourceError(f"outputs= holds {item!r}; give parameter names or paths, "
                                "as non-empty strings")
    if len(set(items)) != len(items):
        raise ResourceError(f"outputs={list(items)!r} names an output twice; name each once")
    return items


def _capture(capture: bool | int) -> int:
    if capture is True:
        return CAPTURE_LIMIT
    if capture is False:
        return 0
    if isinstance(capture, int) and capture > 0:
        return capture
    raise ResourceError(f"capture={capture!r} must be True, False or a positive number of "
                        "bytes")


def _version(version: str | None) -> str | None:
    if version is not None and not isinstance(version, str):
        raise ResourceError(f"version={version!r} must be a string, such as \"2.1.0\"")
    return version


def _cache(cache: bool) -> bool:
    if not isinstance(cache, bool):
        raise ResourceError(f"cache={cache!r} must be True or False")
    return cache


def _check_signature(fn: Callable[..., Any]) -> None:
    try:
        inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ResourceError(f"@fntree.shell cannot read the parameters of {fn!r} ({exc}); "
                            "decorate a plain function") from None


# -- commands ------------------------------------------------------------------------------

class _Quoting(string.Formatter):
    """str.format whose every field is quoted for bash; a list becomes quoted words."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, (list, tuple)):
            return " ".join(self.format_field(item, format_spec) for item in value)
        return shlex.quote(format(value, format_spec))

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        try:
            return super().get_value(key, args, kwargs)
        except (KeyError, IndexError):
            raise CommandError(_missing(key, kwargs)) from None


def _missing(key: int | str, given: Mapping[str, Any]) -> str:
    if key == "memory_mb":
        return ("the command uses {memory_mb} but its target declares no memory; give "
                "memory= to @fntree.shell, or memory_mb= to fntree.sh")
    names = ", ".join(sorted(given)) or "none"
    return (f"the command uses {{{key}}} but fntree.sh was given no value for it (values: "
            f"{names}); pass {key}=... to fntree.sh")


def sh(template: str, /, **values: Any) -> str:
    """`template` with each `{name}` replaced by `values[name]` quoted for bash.

    `{cpu}` and `{memory_mb}` are the running job's cores and memory (MiB) unless given.
    A list or tuple value becomes several words, each quoted. Literal braces: `{{`, `}}`.
    """
    if not isinstance(template, str):
        raise CommandError(f"fntree.sh takes a template string, not a "
                           f"{type(template).__name__}")
    fields = dict(resource_fields(context.running()))
    fields.update(values)
    try:
        return _Quoting().vformat(template, (), fields)
    except ValueError as exc:
        raise CommandError(f"the template {template!r} is not a valid format string ({exc}); "
                           "write literal braces as {{ and }}") from None


def resource_fields(ctx: context.Context | None) -> dict[str, int]:
    """{cpu, memory_mb} of a running job (cores rounded up, memory in MiB), or {}."""
    if ctx is None:
        return {}
    fields = {"cpu": max(1, math.ceil(ctx.cpu))}
    if ctx.memory is not None:
        fields["memory_mb"] = max(1, ctx.memory // (1 << 20))
    return fields
