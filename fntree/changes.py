"""What a restart changes: live jobs of targets whose code changed run the new code, said aloud.

A job store records each function key's identity (module, qualname, code hash,
origin; `TARGETS` records, fntree/identity.py). At a restart, `plan` looks up
the current code of every recorded target:

- a target of an importable module: the module imported here (with the run's
  recorded `sys.path`); workers load it by reference, so they run it anyway;
- a `__main__` target: only from the same `__main__` (the same script path, or
  a notebook); from anywhere else its recorded code runs (and when the script
  changed since the run started, a warning says so).

A target is re-bound only to the same module and qualname. When the restarting
`__main__` defines a target with the same name as one of the run's live targets
that is not that target (another script, another module), the restart is
refused with a message naming both (`RebindRefused`), rather than running
unrelated code.

Each recorded target whose code hash differs is named in one WARNING: how many
of its jobs completed with the old code (their values are kept) and how many
live jobs will run with the new (perhaps none); with `--rerun-changed`
(fntree/rerun.py), that its calls run again with the new code. The plan is a list of records:
`TARGETS` for the new identities of targets with live jobs (so the next restart
compares with them) and `RECODE` for the live jobs whose function key changes
(code saved by value). The leader writes them before anything runs; nothing
here writes.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from fntree import identity
from fntree.dsl import Target
from fntree.errors import FntreeError
from fntree.identity import NOTEBOOK, Identity
from fntree.runtime.records import R_RECODE, R_TARGETS
from fntree.runtime.state import RunState

log = logging.getLogger("fntree")


class RebindRefused(FntreeError, ValueError):
    """The restarting code defines a target of the run's name that is not the run's target."""


class Changed(NamedTuple):
    """A target whose code changed since its jobs were made."""

    recorded: Identity
    completed: int
    live: int


def recode_for(config: dict[str, Any]) -> Callable[[RunState], list[tuple[Any, ...]]]:
    """The leader's `recode` hook for a restart of the run with `config`."""
    return lambda state: plan(state, config)


def plan(state: RunState, config: dict[str, Any], *,
         rerun: bool = False) -> list[tuple[Any, ...]]:
    """The records that make live jobs run the current code; warns of what changed
    (`rerun`: the completed jobs run again, fntree/rerun.py)."""
    main = _main_targets()
    here = identity.main_origin()
    targets: dict[bytes, tuple[str, str, bytes, str]] = {}
    recode: dict[bytes, tuple[bytes, bytes]] = {}
    changed: dict[tuple[Identity, bytes], Changed] = {}
    current: dict[Identity, Target | None] = {}
    live_jobs = state.live_jobs()
    for key, recorded_tuple in sorted(state.targets.items()):
        recorded = Identity(*recorded_tuple)
        live = live_jobs.get(key, 0)
        if live:
            _refuse_other(recorded, main, here)
        place = recorded._replace(code_hash=b"")
        if place not in current:
            current[place] = _current(recorded, main, here, config)
            if current[place] is None and live and recorded.module == "__main__":
                _warn_by_value(recorded, here, config)
        found = _describe(current[place], live)
        if found is None:
            current[place] = None
            continue
        now, new_key, data = found
        if now.code_hash == recorded.code_hash:
            continue
        if live:
            targets[new_key] = (now.module, now.qualname, now.code_hash, now.origin)
            if new_key != key:
                recode[key] = (new_key, data)
        seen = changed.get((place, recorded.code_hash))
        changed[(place, recorded.code_hash)] = Changed(
            recorded, state.done_by_code[recorded.code_hash], live + (seen.live if seen else 0))
    _warn(list(changed.values()), rerun)
    records: list[tuple[Any, ...]] = []
    if targets:
        records.append((R_TARGETS, targets))
    if recode:
        records.append((R_RECODE, recode))
    return records


def _describe(target: Target | None, live: int) -> tuple[Identity, bytes, bytes] | None:
    """The identity of `target` now and, if it has live jobs, its (key, pickled function)."""
    if target is None:
        return None
    try:
        key, data = target.pickled() if live else (b"", b"")
        return identity.identity(target), key, data
    except Exception as exc:  # e.g. a global that cannot be saved: keep the recorded code
        log.warning("the current code of target `%s` cannot be used (%s: %s); its live jobs "
                    "run the code recorded when they were made", target.name,
                    type(exc).__name__, exc)
        return None


def _warn(changed: list[Changed], rerun: bool) -> None:
    for change in changed:
        if rerun:  # the run starts again from its root: every call runs the new code
            log.warning("the code of target `%s` (%s) changed since its jobs were made: %d "
                        "job(s) completed with the old code; its calls run again with the "
                        "new code", change.recorded.qualname, change.recorded.where(),
                        change.completed)
            continue
        done = (f"{change.completed} job(s) completed with the old code and their values are "
                "kept (a new run recomputes them)" if change.completed
                else "no job completed with the old code")
        log.warning("the code of target `%s` (%s) changed since its jobs were made: %s; %d "
                    "live job(s) will run with the new code", change.recorded.qualname,
                    change.recorded.where(), done, change.live)


def current_code(state: RunState, key: bytes,
                 config: dict[str, Any]) -> tuple[bytes, bytes, Identity] | None:
    """The (key, pickled function, identity) of the code that now stands where function
    `key` of the run was defined, or None when this process cannot see it (its recorded
    code then runs)."""
    recorded_tuple = state.targets.get(key)
    if recorded_tuple is None:
        return None
    recorded = Identity(*recorded_tuple)
    main, here = _main_targets(), identity.main_origin()
    _refuse_other(recorded, main, here)
    found = _describe(_current(recorded, main, here, config), 1)
    if found is None:
        return None
    now, new_key, data = found
    return new_key, data, now


def _main_targets() -> dict[str, Target]:
    """Targets defined in this process's `__main__` (a script or a notebook), by qualname."""
    main = sys.modules.get("__main__")
    return {value.__qualname__: value for value in list(vars(main).values())
            if isinstance(value, Target) and value.fn.__module__ == "__main__"}


def _refuse_other(recorded: Identity, main: dict[str, Target], here: str) -> None:
    other = main.get(recorded.qualname)
    if other is None or (recorded.module == "__main__" and recorded.origin == here):
        return
    mine = identity.Identity("__main__", recorded.qualname, b"", here or NOTEBOOK)
    raise RebindRefused(
        f"the run's target `{recorded.qualname}` is {recorded.where()}, but the code "
        f"restarting it defines another one, {mine.where()}; a target is re-bound only to "
        "the same module and qualname, so nothing was run. Restart from the script or "
        "notebook that started the run, or with `fntree restart DIR` to run the run's own "
        "targets")


def _current(recorded: Identity, main: dict[str, Target], here: str,
             config: dict[str, Any]) -> Target | None:
    """The target that now stands where `recorded` was defined, if this process can see it."""
    if "<locals>" in recorded.qualname:
        return None
    if recorded.module == "__main__":
        if recorded.origin != here:
            return None
        mine = main.get(recorded.qualname)
        if mine is None:
            log.warning("target `%s` is not defined in this %s any more; its live jobs run "
                        "the code recorded when they were made", recorded.qualname,
                        "notebook" if here == NOTEBOOK else "script")
        return mine
    try:
        with _run_path(config):
            found: Any = importlib.import_module(recorded.module)
            for part in recorded.qualname.split("."):
                found = getattr(found, part)
    except Exception as exc:
        log.warning("cannot load target `%s` from module %s here to compare its code (%s: "
                    "%s); its jobs load it in the workers", recorded.qualname,
                    recorded.module, type(exc).__name__, exc)
        return None
    return found if isinstance(found, Target) else None


def _warn_by_value(recorded: Identity, here: str, config: dict[str, Any]) -> None:
    """A script's `__main__` target restarted from elsewhere runs its recorded code: say so."""
    path = recorded.origin
    if path in (NOTEBOOK, here) or not os.path.isfile(path):
        return
    if os.stat(path).st_mtime > float(config.get("created", 0)):
        log.warning("script %s changed since the run started, but its target `%s` travels by "
                    "value: this restart runs the code recorded when its jobs were made; to "
                    "run the edited code, restart from the script (fntree.restart(DIR) in "
                    "it)", path, recorded.qualname)


@contextlib.contextmanager
def _run_path(config: dict[str, Any]) -> Iterator[None]:
    """The run's recorded import path, in front of this process's, for a while."""
    saved = list(sys.path)
    sys.path[:0] = [p for p in config.get("sys_path", ()) if p not in sys.path]
    try:
        yield
    finally:
        sys.path[:] = saved
