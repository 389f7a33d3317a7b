"""Seeded fault injection, for proving crash-safety rather than claiming it.

Two faults, as jobTree's acid test and sort test had them:

- `kill`: the probability that a job's worker is SIGKILLed at a random moment of
  the job's run (during its body, or just after it and before its result is
  reported);
- `raise_`: the probability that a target raises `InjectedFault` before doing its work.

Every decision is drawn from a generator seeded with (seed, job id, attempt),
so the same seed gives the same faults, whatever the timing. Workers read the
settings from their environment (`FNTREE_FAULT_KILL`, `FNTREE_FAULT_RAISE`,
`FNTREE_FAULT_SEED`), which the leader sets from the run's options.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from collections.abc import Mapping

ENV_KILL, ENV_RAISE, ENV_SEED = "FNTREE_FAULT_KILL", "FNTREE_FAULT_RAISE", "FNTREE_FAULT_SEED"
KILL_WINDOW = 0.05  # seconds into a job within which an injected kill lands


class InjectedFault(Exception):
    """Raised by fault injection in place of a target's work."""


class Faults:
    """The fault settings of one worker process."""

    def __init__(self, kill: float = 0.0, raise_: float = 0.0, seed: int = 0) -> None:
        self.kill = kill
        self.raise_ = raise_
        self.seed = seed

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Faults:
        return cls(float(environ.get(ENV_KILL) or 0), float(environ.get(ENV_RAISE) or 0),
                   int(environ.get(ENV_SEED) or 0))

    @property
    def active(self) -> bool:
        return self.kill > 0 or self.raise_ > 0

    def before(self, job_id: int, attempt: int) -> threading.Timer | None:
        """Called before a job's body: may raise InjectedFault, or arm a kill."""
        rng = random.Random(f"{self.seed}:{job_id}:{attempt}")
        fail, kill, moment = rng.random(), rng.random(), rng.uniform(0, KILL_WINDOW)
        if fail < self.raise_:
            raise InjectedFault(f"fault injected before the work (seed {self.seed})")
        if kill >= self.kill:
            return None
        timer = threading.Timer(moment, _kill_self)
        timer.daemon = True
        timer.start()
        return timer

    @staticmethod
    def after(timer: threading.Timer | None) -> None:
        """Called after a job's body: an armed kill that has not fired fires now."""
        if timer is not None:
            timer.cancel()
            _kill_self()


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def environment(kill: float, raise_: float, seed: int) -> dict[str, str]:
    """The worker environment variables for these settings (empty when there are none)."""
    if not kill and not raise_:
        return {}
    return {ENV_KILL: repr(kill), ENV_RAISE: repr(raise_), ENV_SEED: str(seed)}
