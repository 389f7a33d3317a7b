"""fntree: jobTree's children / follow-on pattern as a decorator-based, crash-only DSL.

    @fntree.target(time="1m", memory="1G")
    def msort(lines):
        if len(lines) < 1000:
            return sorted(lines)
        half = len(lines) // 2
        return merge(msort(lines[:half]), msort(lines[half:]))

    fntree.run(msort(lines))
"""

from fntree._imports import explain, standard_library_first

# A script named like a module fntree imports (random.py, json.py) must not stand in for it.
with standard_library_first():
    try:
        from fntree.api import add_arguments, restart, run
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
        from fntree.shell_run import CommandFailed
        from fntree.shell_target import ShellTarget, sh, shell
    except Exception as _error:
        _why = explain(_error)
        if _why is None:
            raise
        raise _why from None

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
