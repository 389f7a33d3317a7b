"""The DSL: `@target`, `Call`, and the directives a target's body returns.

Calling a target runs nothing: it returns a `Call`, which holds the target, its
resources and its arguments already serialized. Serializing at the call means
that an argument that cannot travel to a worker fails right there, naming the
target and the value's type, and that later changes to a mutable argument do
not leak into the job. A `Call` found among the arguments is a promise: it is
recorded in `Call.deps` and its place in the arguments is a numbered slot that
the worker fills with its value.

A call is not a value: formatting one (`str`, f-strings) raises. Each call keeps
the file and line that made it, and the calls made while a job's body runs are
listed (`made_calls`) so that the compiler can name any the body dropped.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fntree.errors import CompileError, ResourceError, SerializationError
from fntree.resources import Resources
from fntree.runtime import codec, retrying

_run = [0]


def new_run() -> None:
    """Start a new run: targets are pickled again when first used (see Target.pickled)."""
    _run[0] += 1


def run_generation() -> int:
    """Which run this process is making jobs for (see `new_run`)."""
    return _run[0]


class Target:
    """A function decorated with `@fntree.target`; call it to make a `Call`."""

    __qualname__: str  # set per instance by functools.update_wrapper
    isolate = False  # run each job in a fresh process (@target(isolate=True))
    cache = False  # declared pure: calls may take their value from the cache across runs
    # which exceptions are worth a retry, by name (fntree/runtime/retrying.py): None is the default
    retry_on: tuple[str, ...] | None = None
    no_retry: tuple[str, ...] = ()

    def __init__(self, fn: Callable[..., Any], name: str, resources: Resources,
                 base: Target | None = None) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = name
        self.resources = resources
        self._base = base
        self._pickled: tuple[bytes, bytes] | None = None
        self._pickled_run = -1

    def __call__(self, *args: Any, **kwargs: Any) -> Call:
        return Call(self, args, kwargs, self.resources)

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        """Run the body on decoded arguments (in a worker); a shell target runs a command too."""
        return self.fn(*args, **kwargs)

    def options(self, **resources: Any) -> Target:
        """This target with `time`, `memory`, `cpu` or `retries` changed, for one call."""
        return Target(self.fn, self.name, self.resources.evolve(**resources),
                      self._base or self)

    def base(self) -> Target:
        """The target this one was made from with `options`, or itself."""
        return self._base or self

    def pickled(self) -> tuple[bytes, bytes]:
        """(key, bytes) of the function that workers load; made once per run.

        Once per run, not per process: a function made by value (a script's or a
        notebook's) carries the globals it reads, and a notebook may have changed
        them since the last run.
        """
        base = self._base or self
        if base._pickled is None or getattr(base, "_pickled_run", -1) != _run[0]:
            base._pickled = codec.dumps_function(base)
            base._pickled_run = _run[0]
        return base._pickled

    def __repr__(self) -> str:
        return f"<fntree target {self.name}>"

    # Importable targets travel by reference; others (a script's __main__, a
    # notebook, a closure) by value, through dill.
    def __reduce_ex__(self, protocol: Any) -> Any:
        if self._base is None and _importable(self):
            return _load_target, (self.__module__, self.__qualname__)
        return object.__reduce_ex__(self, protocol)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_pickled"] = None
        state["_pickled_run"] = -1
        return state


def _importable(target: Target) -> bool:
    module = sys.modules.get(target.__module__)
    if module is None or target.__module__ == "__main__" or "<locals>" in target.__qualname__:
        return False
    found: Any = module
    for part in target.__qualname__.split("."):
        found = getattr(found, part, None)
    return found is target


def _load_target(module: str, qualname: str) -> Target:
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def target(*args: Any, time: Any = None, memory: Any = None, cpu: Any = 1,
           retries: Any = None, name: str | None = None, slurm_args: Any = None,
           isolate: bool = False, cache: bool = False, retry_on: Any = None,
           no_retry: Any = None) -> Any:
    """Make a function a target: `@target`, or `@target(time, memory, cpu, retries=, name=)`.

    `time` is the expected run time (seconds or "90s", "10m", "2h", "1d"),
    `memory` bytes (or "512M", "2G", "1.5GiB"), `cpu` cores; `slurm_args` more
    sbatch options for this target's jobs on Slurm. A bad value raises
    ResourceError here, when the decorator runs.

    `isolate=True` runs each job of the target in a fresh process (forked from its
    worker), for code that changes interpreter state that cannot be undone.

    `cache=True` declares the target pure (its value depends only on its code and
    arguments), so a run with a cache directory takes the value of a call it has
    seen from the cache.

    `retry_on=(OSError, TimeoutError)`: only these exceptions (and their subclasses)
    are worth a retry; `no_retry=(KeyError, ...)`: these are not. By default a
    deterministic error in the body (KeyError, TypeError, ValueError, AttributeError,
    ZeroDivisionError, AssertionError, ...) fails the job at once, while a dead
    worker, a time or memory limit, an OSError or any other exception is retried
    (fntree/runtime/retrying.py).
    """
    if len(args) == 1 and callable(args[0]) and not isinstance(args[0], Target):
        return Target(args[0], args[0].__name__, Resources())
    if len(args) > 3:
        raise ResourceError("@target takes at most three positional values: time, memory, cpu")
    positional = dict(zip(("time", "memory", "cpu"), args, strict=False))
    given = {"time": time, "memory": memory, "cpu": cpu}
    for key in positional:
        if given[key] is not None and not (key == "cpu" and given[key] == 1):
            raise ResourceError(f"@target got {key} both as a positional value and as {key}=; "
                                "give it once")
    resources = Resources.parse(positional.get("time", time), positional.get("memory", memory),
                                positional.get("cpu", cpu), retries, slurm_args)
    if name is not None and (not isinstance(name, str) or not name):
        raise ResourceError(f"name={name!r} must be a non-empty string")
    retry_names = None if retry_on is None else retrying.policy_names("retry_on", retry_on)
    no_retry_names = () if no_retry is None else retrying.policy_names("no_retry", no_retry)

    def decorate(fn: Callable[..., Any]) -> Target:
        if not callable(fn) or isinstance(fn, Target):
            raise TypeError(f"@target decorates a function, not {type(fn).__name__}")
        made = Target(fn, name or fn.__name__, resources)
        if isolate:
            _check_isolate(isolate)
            made.isolate = True
        if cache:
            made.cache = True
        if retry_names is not None:
            made.retry_on = retry_names
        if no_retry_names:
            made.no_retry = no_retry_names
        return made

    return decorate


def _check_isolate(isolate: Any) -> None:
    if not isinstance(isolate, bool):
        raise ResourceError(f"isolate={isolate!r} must be True or False")


class Call:
    """A target applied to arguments: a job to be, not yet run.

    Each call keeps where it was made (`site`: file and line), and while a job's
    body runs every call made is listed in a registry (`made_calls`), so that a
    call the body neither returned nor passed on is reported, not silently dropped.
    """

    __slots__ = ("args", "deps", "resources", "site", "target")

    def __init__(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any],
                 resources: Resources) -> None:
        self.target = target
        self.resources = resources
        try:
            self.args, self.deps = codec.dumps((args, kwargs), Call, split=True)
        except SerializationError:
            raise _explain(target, args, kwargs) from None
        frame = sys._getframe(1)
        if frame.f_code is _TARGET_CALL:
            frame = frame.f_back or frame
        self.site = (frame.f_code.co_filename, frame.f_lineno)
        if _made is not None:
            _made.append(self)

    def where(self) -> str:
        """`file:line` of the code that made this call."""
        return f"{self.site[0]}:{self.site[1]}"

    def __repr__(self) -> str:
        return f"<fntree call {self.target.name}(...)>"

    def __str__(self) -> str:
        raise CompileError(
            f"the call `{self.target.name}(...)` made at {self.where()} is not yet a value: "
            "it runs later, as a job, so it cannot be formatted into a string; pass the "
            "call to another target, whose argument then holds its value, and format it "
            "there")

    def __format__(self, spec: str) -> str:
        return self.__str__()

    def __reduce__(self) -> Any:
        raise SerializationError(
            f"a call of `{self.target.name}` cannot be stored inside a value; return it, "
            "list it in fntree.children(...), or pass it as an argument of another call")


_TARGET_CALL = Target.__call__.__code__

# The calls made while a job's body runs, or None outside a body.
_made: list[Call] | None = None


@contextlib.contextmanager
def made_calls() -> Iterator[list[Call]]:
    """The list of every `Call` made inside this block, in order (for a job's body)."""
    global _made
    outer, _made = _made, []
    try:
        yield _made
    finally:
        _made = outer


def _explain(target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SerializationError:
    items = [(f"argument {i + 1}", v) for i, v in enumerate(args)]
    items += [(f"argument {k}=", v) for k, v in kwargs.items()]
    for where, value in items:
        try:
            codec.dumps(value, Call)
        except SerializationError as exc:
            return SerializationError(
                f"{where} of target `{target.name}` is a {type(value).__name__}, which "
                f"cannot be sent to a worker ({exc}); pass plain data, a path, or "
                "something picklable instead")
    return SerializationError(f"the arguments of target `{target.name}` cannot be serialized")


class Spawn:
    """Children to run, and at most one follow-on to run after all of them."""

    __slots__ = ("children", "follow")

    def __init__(self, children: tuple[Call, ...], follow: Call | None = None) -> None:
        self.children = children
        self.follow = follow

    def then(self, call: Call) -> Spawn:
        """This spawn with `call` as its follow-on."""
        if self.follow is not None:
            raise CompileError(f"a job has at most one follow-on, and this one already has "
                               f"`{self.follow.target.name}`; chain further work from the "
                               "follow-on's own body instead")
        return Spawn(self.children, _check_call(call, "follow-on"))

    def __reduce__(self) -> Any:
        raise SerializationError(
            "fntree.children(...) is a directive to return, not a value to pass on; pass the "
            "calls themselves (a list of calls is a list of promises)")

    def __repr__(self) -> str:
        follow = f".then({self.follow!r})" if self.follow else ""
        return f"<fntree children({len(self.children)}){follow}>"


def _check_call(call: Any, role: str) -> Call:
    if isinstance(call, Call):
        return call
    if isinstance(call, Target):
        raise CompileError(f"the {role} `{call.name}` is a target, not a call of it; "
                           f"write `{call.name}(...)` with its arguments")
    raise CompileError(f"a {role} must be a call of a target, not a {type(call).__name__}")


def children(*calls: Call | Iterable[Call]) -> Spawn:
    """Run `calls` as children; add a follow-on with `.then(call)`."""
    flat: list[Any] = []
    for item in calls:
        if isinstance(item, (list, tuple)) or (not isinstance(item, (Call, Target, str, bytes))
                                               and isinstance(item, Iterable)):
            flat.extend(item)
        else:
            flat.append(item)
    return Spawn(tuple(_check_call(c, "child") for c in flat))


def follow_on(call: Call) -> Spawn:
    """Run `call` after this job, as the next job of its chain."""
    return Spawn((), _check_call(call, "follow-on"))
