"""fntree: jobTree's children / follow-on pattern as a decorator-based, crash-only DSL.

    @fntree.target(time="1m", memory="1G")
    def msort(lines):
        if len(lines) < 1000:
            return sorted(lines)
        half = len(lines) // 2
        return merge(msort(lines[:half]), msort(lines[half:]))

    fntree.run(msort(lines))

`import fntree` imports the DSL (what a script needs to declare its targets, and
what a worker needs to run them); the leader's side (`run`, `restart`,
`add_arguments`: the job store, the leader, the batch systems) and the shell
targets are imported on first use (PEP 562's module `__getattr__`), so a worker,
which never leads a run, starts without them. Each import, eager or on first use,
runs inside `standard_library_first`.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from fntree._imports import explain, standard_library_first

# A script named like a module fntree imports (random.py, json.py) must not stand in for it.
with standard_library_first():
    try:
        from fntree.dsl import Call, Spawn, Target, children, follow_on, target
        from fntree.errors import (
            CompileError,
            FailedJob,
            FntreeError,
            JobStoreError,
            LeaderRunningError,
            NestedRunError,
            ResourceError,
            RunInterrupted,
            SerializationError,
            WorkflowFailed,
        )
        from fntree.resources import Resources
        from fntree.runtime.context import Context
        from fntree.runtime.context import current as context
    except Exception as _error:
        _why = explain(_error)
        if _why is None:
            raise
        raise _why from None

if TYPE_CHECKING:
    from fntree.api import add_arguments, restart, run
    from fntree.shell_run import CommandFailed
    from fntree.shell_target import ShellTarget, sh, shell

# Public name -> the module that holds it, imported on first use.
_LAZY = {
    **dict.fromkeys(("add_arguments", "restart", "run"), "fntree.api"),
    "CommandFailed": "fntree.shell_run",
    **dict.fromkeys(("ShellTarget", "sh", "shell"), "fntree.shell_target"),
}


if not TYPE_CHECKING:  # hidden from type checkers, which then see the imports above and
    # flag a misspelt attribute (a module __getattr__ would make every attribute Any)

    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            # name= and obj= let the traceback suggest a close name ("Did you mean: 'target'?")
            raise AttributeError(f"module 'fntree' has no attribute {name!r}", name=name,
                                 obj=sys.modules[__name__])
        with standard_library_first():
            try:
                value = getattr(importlib.import_module(module), name)
            except Exception as error:
                why = explain(error)
                if why is None:
                    raise
                raise why from None
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"

__all__ = [
    "Call",
    "CommandFailed",
    "CompileError",
    "Context",
    "FailedJob",
    "FntreeError",
    "JobStoreError",
    "LeaderRunningError",
    "NestedRunError",
    "ResourceError",
    "Resources",
    "RunInterrupted",
    "SerializationError",
    "ShellTarget",
    "Spawn",
    "Target",
    "WorkflowFailed",
    "add_arguments",
    "children",
    "context",
    "follow_on",
    "restart",
    "run",
    "sh",
    "shell",
    "target",
]
