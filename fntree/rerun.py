"""`fntree restart DIR --rerun-changed`: the answer a fresh run of the current code gives.

A run drops a chain's values once it closes, so a restart cannot re-run only
the completed jobs of a changed target and feed their new values to the jobs
that used the old ones: those values are gone. What it can do exactly is start
the run again from its root with the current code, and let the cache across
runs (fntree/runtime/cache.py) supply every call that need not run:

- `plan` makes a new root spec from the recorded one: the same arguments and
  resources, each function (the root's and those of its promised arguments)
  re-bound to the code that now stands where it was defined (the rules of
  fntree/changes.py: same module and qualname, a `__main__` target only from
  its own script or notebook), and a fresh root id `derive_id(ROOT_ID,
  RERUN, n)` for the n-th re-run, so no job id, log or global temp dir of the
  earlier run is reused. When the current code of one of them cannot be
  loaded here (a script's target restarted from the shell), the restart is
  refused before anything is written: the recorded code would not give a
  fresh run's answer;
- one `RERUN` record carries it; `apply` drops every open chain, failure and
  the finished value and adds the new root chain (fntree/runtime/state.py).

The record is written with the new leader's `EPOCH` and made durable by one
commit before anything is issued: a leader killed before the commit leaves
the run as it was (the next `--rerun-changed` plans again), one killed after
it leaves a run that a plain restart continues from the new root.

Then every job runs with the current code, except calls of pure targets
(`cache=True`) whose key (code hash, arguments with promised values, file
contents) is already in the run's cache: a run started with a cache left its
pure calls' values there, so only the changed pure calls and the calls whose
inputs changed run again. Targets not declared pure always run again (reusing
their old values would not be exact). A run with no cache re-runs everything,
and says so. Nothing here writes; the leader writes the records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fntree import changes, identity
from fntree.errors import FntreeError
from fntree.identity import NOTEBOOK, Identity
from fntree.runtime.records import DEP, R_RERUN, R_TARGETS, RERUN, ROOT_ID, Spec, derive_id
from fntree.runtime.state import RunState

log = logging.getLogger("fntree")


class RerunRefused(FntreeError, ValueError):
    """--rerun-changed cannot load the current code of the run's root call."""


def rerun_for(config: dict[str, Any], cached: bool) -> Callable[[RunState], list[tuple[Any, ...]]]:
    """The leader's `recode` hook for `--rerun-changed` of the run with `config`."""
    return lambda state: plan(state, config, cached)


def plan(state: RunState, config: dict[str, Any], cached: bool) -> list[tuple[Any, ...]]:
    """The records that start the run again from its root with the current code."""
    records = changes.plan(state, config, rerun=True)
    assert state.root is not None  # recovery refuses a store without one
    fns: dict[bytes, bytes] = {}
    targets: dict[bytes, tuple[str, str, bytes, str]] = {}
    keys: dict[bytes, bytes] = {}

    def rebind(key: bytes) -> bytes:
        if key not in keys:
            found = changes.current_code(state, key, config)
            if found is None:
                _refuse(state, key)
            else:
                new_key, data, now = found
                keys[key] = new_key
                fns[new_key] = data
                targets[new_key] = tuple(now)  # type: ignore[assignment]
        return keys[key]

    spec = respec(state.root, derive_id(ROOT_ID, RERUN, state.reruns + 1), rebind)
    if cached:
        log.warning("the run starts again from its root with the current code "
                    "(--rerun-changed): calls of pure targets (cache=True) found in the "
                    "run's cache are not run again; every other job is")
    else:
        log.warning("the run has no cache, so --rerun-changed runs every job again (what a "
                    "fresh run of the current code gives); start runs with --cache DIR (or "
                    "FNTREE_CACHE) so that a later --rerun-changed runs only what changed")
    if targets:
        records.append((R_TARGETS, targets))
    records.append((R_RERUN, spec, fns))
    return records


def _refuse(state: RunState, key: bytes) -> None:
    """A re-run with the recorded code would not be the fresh run asked for: refuse."""
    recorded = state.targets.get(key)
    if recorded is None:
        raise RerunRefused("the job store does not record which target the run's root call "
                           "is (it was made by an earlier fntree), so --rerun-changed cannot "
                           "load its current code; nothing was run. Start a new run instead")
    target = Identity(*recorded)
    here = identity.main_origin()
    if target.module == "__main__" and target.origin != here:
        source = "the notebook" if target.origin == NOTEBOOK else f"the script {target.origin}"
        remedy = (f"run `fntree.restart(DIR, rerun_changed=True)` from {source}, whose "
                  "targets travel by value and are seen only there")
    else:
        remedy = ("a target is re-bound only when its module imports here with the run's "
                  "import path (see any warning above) and it is not defined inside a "
                  "function")
    raise RerunRefused(f"--rerun-changed cannot load the current code of target "
                       f"`{target.qualname}` ({target.where()}), which the run's root call "
                       f"uses, so it cannot give a fresh run's answer; nothing was run: "
                       f"{remedy}")


def respec(spec: Spec, job_id: int, rebind: Callable[[bytes], bytes]) -> Spec:
    """`spec` with id `job_id`, its promised arguments' ids derived from it (as the
    compiler derives them) and every function key passed through `rebind`."""
    deps = tuple(respec(dep, derive_id(job_id, DEP, k), rebind)
                 for k, dep in enumerate(spec.deps))
    return spec._replace(job_id=job_id, fn_key=rebind(spec.fn_key), deps=deps)
