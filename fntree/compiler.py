"""The compiler: what a target's body returned, lowered into jobTree's tree.

`lower(job_id, returned)` is a pure function from a job's id and its body's
return value to its outcome: `(O_VALUE, value)`, or `(O_SPAWN, children,
follow_on)` with the `Spec`s of the new jobs. The rules:

- a plain value is the job's value; a value holding calls becomes a follow-on
  that builds it once those calls (run as children) have their values;
- a `Call` is a tail call: it becomes the follow-on;
- `children(a, b).then(f)` makes `a`, `b` founders of new chains and `f` the
  next job of this chain, run after both chains and all their descendants;
- a call passed as an argument of the follow-on is a promise: if it is not
  listed among the children it is added to them, and its value fills its slot;
- a call with promised arguments that is itself a child runs after them: they
  become its `deps`, children of its own chain;
- each call runs once: listing it twice, or promising it in two places, is an
  error that says so.

Ids are derived from the parent's id and the position, so a job that runs again
after a crash spawns the same ids. Promises are walked with a stack, never by
recursion: a chain of promises may be any number of calls deep.

`execute` (the worker's hook) also checks that nothing was dropped: every call
the body made (listed by `dsl.made_calls`) must be among those lowered, or the
job fails naming the call's target and the line that made it.
"""

from __future__ import annotations

from typing import Any

from fntree import identity
from fntree.dsl import Call, Spawn, Target, made_calls
from fntree.errors import CompileError, SerializationError
from fntree.resources import Resources
from fntree.runtime import codec
from fntree.runtime.records import (
    CHILD,
    DEP,
    FOLLOW_ON,
    O_SPAWN,
    O_VALUE,
    ROOT_ID,
    Res,
    Spec,
    derive_id,
)

Fns = dict[bytes, bytes]


def lower(job_id: int, returned: Any) -> tuple[tuple[Any, ...], Fns]:
    """The outcome of job `job_id` whose body returned `returned`, and the functions it names."""
    outcome, fns, _ = _lower(job_id, returned)
    return outcome, fns


def _lower(job_id: int, returned: Any) -> tuple[tuple[Any, ...], Fns, set[int]]:
    """`lower`, and the ids of the calls it made into jobs."""
    if isinstance(returned, Call):
        spawn = Spawn((), returned)
    elif isinstance(returned, Spawn):
        spawn = returned
    elif isinstance(returned, Target):
        raise CompileError(f"the target returned the target `{returned.name}` itself, not a "
                           f"call of it; write `return {returned.name}(...)`")
    else:
        data, promises = codec.dumps(returned, Call, split=True)
        if not promises:
            return (O_VALUE, data), {}, set()
        spawn = Spawn((), Call(build_value, (returned,), {}, build_value.resources))
    fns: Fns = {}
    seen: set[int] = set()
    listed = list(spawn.children)
    position = {}
    for i, call in enumerate(listed):
        if id(call) in position:
            raise CompileError(f"the call `{call.target.name}(...)` is listed twice among "
                               "the children; a call runs once: make two calls to run it twice")
        position[id(call)] = i
    follow = None
    if spawn.follow is not None:
        slots = []
        for dep in spawn.follow.deps:
            if id(dep) not in position:
                position[id(dep)] = len(listed)
                listed.append(dep)
            slots.append(position[id(dep)])
        seen.add(id(spawn.follow))
        follow = _spec(derive_id(job_id, FOLLOW_ON, 0), spawn.follow, tuple(slots), (), fns)
    specs = tuple(_with_deps(derive_id(job_id, CHILD, i), call, seen, fns)
                  for i, call in enumerate(listed))
    return (O_SPAWN, specs, follow), fns, seen


def root_spec(call: Call) -> tuple[Spec, Fns]:
    """The spec of a run's first job, and the functions it names."""
    if not isinstance(call, Call):
        raise CompileError(f"fntree.run takes a call of a target, such as `main(x)`, not a "
                           f"{type(call).__name__}")
    fns: Fns = {}
    return _with_deps(ROOT_ID, call, set(), fns), fns


def _with_deps(job_id: int, call: Call, seen: set[int], fns: Fns) -> Spec:
    """The spec of `call` with its promises as deps, nested to any depth.

    Promises nest as deep as the user's calls do (`f(f(f(...)))`), so the walk
    uses a stack: calls in preorder first, then specs built from the innermost out.
    """
    order: list[tuple[int, Call]] = []
    stack = [(job_id, call)]
    while stack:
        job_id, call = stack.pop()
        if id(call) in seen:
            raise CompileError(f"the call `{call.target.name}(...)` is used in two places; a "
                               "call runs once, as one job: pass its value on through a "
                               "follow-on, or make a second call")
        seen.add(id(call))
        order.append((job_id, call))
        promised = call.deps
        stack.extend((derive_id(job_id, DEP, k), promised[k])
                     for k in range(len(promised) - 1, -1, -1))
    built: list[Spec] = []
    for job_id, call in reversed(order):
        count = len(call.deps)
        deps = tuple(built[:-count - 1:-1]) if count else ()
        del built[len(built) - count:]
        built.append(_spec(job_id, call, tuple(range(count)), deps, fns))
    return built[0]


def _spec(job_id: int, call: Call, slots: tuple[int, ...], deps: tuple[Spec, ...],
          fns: Fns) -> Spec:
    key, data = call.target.pickled()
    if key not in fns:
        fns[key] = data
        identity.remember(key, call.target)
    r = call.resources
    return Spec(job_id, call.target.name, key, call.args,
                Res(r.time, r.memory, r.cpu, r.retries, r.slurm_args), slots, deps)


def execute(target: Target, args: tuple[Any, ...], kwargs: dict[str, Any],
            job_id: int) -> tuple[tuple[Any, ...], Fns]:
    """Run a target's body and lower what it returned (the worker's `execute` hook).

    Every call the body made must have become a job: one it neither returned, listed
    as a child nor passed to another call would never run, so it fails the job.
    """
    with made_calls() as made:
        returned = target.invoke(*args, **kwargs)
    try:
        outcome, fns, lowered = _lower(job_id, returned)
    except SerializationError as exc:
        raise SerializationError(
            f"the value returned by target `{target.name}` is a {type(returned).__name__}, "
            f"which cannot be stored ({exc}); return plain data, or write it to a file and "
            "return the path") from None
    if made:
        _check_dropped(target, made, lowered)
    return outcome, fns


def _check_dropped(target: Target, made: list[Call], lowered: set[int]) -> None:
    """Raise CompileError naming the calls in `made` that did not become jobs.

    A dropped call passed to another dropped call is named through that one.
    """
    dropped = [call for call in made if id(call) not in lowered]
    if not dropped:
        return
    inner = {id(dep) for call in dropped for dep in call.deps}
    named = [call for call in dropped if id(call) not in inner]
    first = named[0]
    if len(named) == 1:
        what = f"the call `{first.target.name}(...)` at {first.where()}"
    else:
        shown = ", ".join(f"`{c.target.name}(...)` at {c.where()}" for c in named[:5])
        more = f" and {len(named) - 5} more" if len(named) > 5 else ""
        what = f"{len(named)} calls ({shown}{more})"
    raise CompileError(
        f"target `{target.name}` made {what} but neither returned, listed in "
        "fntree.children(...), nor passed to another call, so it would never run; return "
        f"it (e.g. `return fntree.children(...).then({first.target.name}(...))`) or do not "
        "make it")


def _build_value(value: Any) -> Any:
    """The follow-on of a job that returned a value holding calls: the value, filled in."""
    return value


build_value = Target(_build_value, "value", Resources())
build_value.__qualname__ = "build_value"
