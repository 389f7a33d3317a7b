"""Every error fntree raises derives from `FntreeError`, and also from the builtin a
caller would catch. A message states the fact, then the remedy."""

from __future__ import annotations

from typing import Any


class FntreeError(Exception):
    """The root of fntree's errors."""


class ResourceError(FntreeError, ValueError):
    """A resource request is malformed, or larger than the batch system has."""


class SerializationError(FntreeError, TypeError):
    """An argument or a value cannot be serialized to travel to a worker."""


class CompileError(FntreeError, TypeError):
    """A target returned something that is not a value or a valid directive."""


class JobStoreError(FntreeError, OSError):
    """A job store is missing, foreign, damaged, or in use."""


class BatchSystemError(FntreeError, RuntimeError):
    """A batch system's command failed; `command`, `returncode` and `stderr` say how."""

    def __init__(self, message: str, command: str = "", returncode: int = 0,
                 stderr: str = "") -> None:
        super().__init__(message)
        self.command = command
        self.returncode = returncode
        self.stderr = stderr


class SlurmError(BatchSystemError):
    """A Slurm command failed."""


class GridEngineError(BatchSystemError):
    """A Grid Engine command failed."""


class LeaderRunningError(JobStoreError):
    """Another leader holds the job store."""


class FailedJob:
    """One job that failed after its retries: what `WorkflowFailed.failed` lists."""

    __slots__ = ("attempts", "job_id", "log_path", "log_tail", "message", "name")

    def __init__(
        self,
        name: str,
        job_id: str,
        attempts: int,
        message: str,
        log_tail: str,
        log_path: str | None,
    ) -> None:
        self.name = name
        self.job_id = job_id
        self.attempts = attempts
        self.message = message
        self.log_tail = log_tail
        self.log_path = log_path

    def __repr__(self) -> str:
        return f"FailedJob({self.name!r}, {self.job_id!r}, attempts={self.attempts})"


class FailureGroup:
    """Jobs of one target that failed with the same message: one line of a summary."""

    __slots__ = ("jobs", "message", "name")

    def __init__(self, name: str, message: str, jobs: list[FailedJob]) -> None:
        self.name = name
        self.message = message
        self.jobs = jobs

    def headline(self) -> str:
        """`23 \u00d7 KeyError: 'x' in count_words, e.g. job 1a2b...` (no count for one)."""
        count = f"{len(self.jobs)} \u00d7 " if len(self.jobs) > 1 else ""
        return f"{count}{self.message} in {self.name}, e.g. job {self.jobs[0].job_id}"


def group_failures(failed: list[FailedJob]) -> list[FailureGroup]:
    """`failed` grouped by target and message, the largest group first (then in order)."""
    groups: dict[tuple[str, str], FailureGroup] = {}
    for job in failed:
        key = (job.name, job.message)
        group = groups.get(key)
        if group is None:
            groups[key] = FailureGroup(job.name, job.message, [job])
        else:
            group.jobs.append(job)
    return sorted(groups.values(), key=lambda g: -len(g.jobs))


class WorkflowFailed(FntreeError, RuntimeError):
    """Jobs still failed after their retries; the job store is kept for a restart.

    `failed` lists them; `groups()` the same, identical failures together.
    """

    def __init__(self, message: str, failed: list[FailedJob], jobstore: Any = None) -> None:
        super().__init__(message)
        self.failed = failed
        self.jobstore = jobstore

    def groups(self) -> list[FailureGroup]:
        """The failed jobs grouped by target and message, the largest group first."""
        return group_failures(self.failed)

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for it: the message, not fntree's frames."""
        return [f"WorkflowFailed: {self}"]


class RunInterrupted(KeyboardInterrupt):
    """A run was interrupted (Ctrl-C, SIGTERM): workers stopped, the job store kept.

    A `KeyboardInterrupt`, not an `FntreeError`: an interrupt is not an error, and
    must pass through `except Exception`. Its message says how to continue the run.
    """

    def __init__(self, message: str, jobstore: Any = None) -> None:
        super().__init__(message)
        self.jobstore = jobstore

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for it: the restart hint, not fntree's frames."""
        return [f"KeyboardInterrupt: {self}"]


class UnsafePathError(FntreeError, PermissionError):
    """A path fntree would create or load from is not private: a symlink, another
    user's, or writable by others. `path` names it."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class NestedRunError(FntreeError, RuntimeError):
    """`fntree.run` or `fntree.restart` was called where no run may start: inside a job."""
