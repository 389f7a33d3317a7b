"""The local batch system's watch over running workers: time limits and silence.

Pure functions of what the leader has heard, so that they are tested with
made-up clocks; fntree.batch.local applies them.

- **Time limits.** A job that declares `time=T` may run `TIME_FACTOR * T +
  TIME_GRACE` seconds (twice its time plus ten seconds of grace: a declared
  time is an estimate, a local run must not fail for being a little slow);
  `max_job_duration` (`--max-job-duration`), when set, caps every job, declared
  time or not. A job past its limit has its worker and process tree killed and
  is retried with twice the time, as on Slurm (leader._escalate, cause "time");
  the cap is a ceiling, so a job killed at it is killed at it again on its
  retry: raise `--max-job-duration` on restart.
- **Silence.** While a worker runs a packet it sends a heartbeat every
  `heartbeat_every(silence)` seconds from a thread, naming the task it runs and
  for how long it has run. A worker not heard from for `silence` seconds is
  stopped (SIGSTOP), hung in C code holding the interpreter, or dead; unless
  /proc shows its main thread using the processor (C code that holds the
  interpreter but makes progress, such as a long sort; its helper threads, which
  wake to ask for the interpreter, are not counted), it is killed and its tasks are handled
  as those of a worker that died.
"""

from __future__ import annotations

import enum
import math

TIME_FACTOR = 2.0
TIME_GRACE = 10.0
SILENCE = 60.0  # seconds without a word from a busy worker before it is judged stopped


def time_limit(declared: float | None, max_job_duration: float | None) -> float:
    """Seconds a job that declares `declared` seconds may run here (inf: no limit)."""
    limit = math.inf if declared is None else TIME_FACTOR * declared + TIME_GRACE
    return limit if max_job_duration is None else min(limit, max_job_duration)


def heartbeat_every(silence: float) -> float:
    """How often a busy worker speaks, so that a few lost beats never look like silence."""
    return max(0.05, min(1.0, silence / 5))


class Verdict(enum.Enum):
    """What the watch makes of one busy worker."""

    FINE = "fine"
    """Heard from lately, and its task within its time."""
    OVER_TIME = "over time"
    """Its task has run past its time limit: kill it, retry with more time."""
    SILENT = "silent"
    """Not heard from for too long and not using the processor: kill it."""
    BUSY_IN_C = "busy"
    """Silent but using the processor: it holds the interpreter in C code; let it be."""


def judge(now: float, heard: float, elapsed: float | None, limit: float, silence: float,
          state: str | None, ticks_moved: bool) -> Verdict:
    """The verdict on a busy worker last heard from at `heard` (all times in seconds).

    `elapsed`: how long its current task had run when last heard of (None: not
    known yet); `state`: its /proc state letter (None if it is gone), `ticks_moved`:
    whether it used the processor since the last look.
    """
    if elapsed is not None and elapsed + (now - heard) > limit:
        return Verdict.OVER_TIME
    if now - heard <= silence:
        return Verdict.FINE
    if state is not None and state not in "Tt" and ticks_moved:
        return Verdict.BUSY_IN_C
    return Verdict.SILENT
