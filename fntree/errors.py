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


class WorkflowFailed(FntreeError, RuntimeError):
    """Jobs still failed after their retries; the job store is kept for a restart."""

    def __init__(self, message: str, failed: list[FailedJob], jobstore: Any = None) -> None:
        super().__init__(message)
        self.failed = failed
        self.jobstore = jobstore


class UnsafePathError(FntreeError, PermissionError):
    """A path fntree would create or load from is not private: a symlink, another
    user's, or writable by others. `path` names it."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class NestedRunError(FntreeError, RuntimeError):
    """`fntree.run` or `fntree.restart` was called where no run may start: inside a job."""
