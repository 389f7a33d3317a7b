"""What a run tells its user, and through which subscriber: each thing said once.

- Job messages (`context().log`) go to the display when it shows them (the live
  terminal display and the notebook's have a message pane), else to the
  `fntree.job` logger; `log_level` ERROR or above, or `quiet`, silences them
  (they are still kept in the job store's event log).
- Failures go to the display when it shows them (its failure panel), else to the
  `fntree` logger, the first of each kind in full and the same again in one line
  at INFO (`LogObserver`); at the end, `WorkflowFailed` lists them grouped.
- `quiet`: no notebook display, fntree's own records at ERROR and above: only
  failures and the final summary are printed.
- How to continue a stopped run: `fntree restart DIR` from a shell, but
  `fntree.restart(DIR)` in a notebook, where the command would run the targets'
  code as the notebook had it when the run started, not as it is now.
- An interrupt (Ctrl-C, or SIGTERM, which the leader takes as one) stops the
  workers, commits the journal and ends in `RunInterrupted`, whose message gives
  that hint and which a notebook shows without fntree's frames.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from fntree.errors import RunInterrupted
from fntree.runtime.eventlog import EventLog
from fntree.runtime.events import Events, LogObserver, Observer


def in_kernel() -> bool:
    """Whether this process is a Jupyter kernel (without importing the display)."""
    if "ipykernel" not in sys.modules:
        return False
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def restart_hint() -> str:
    """How to continue a run, for a message: `{root}` stands for its job store."""
    return "`fntree.restart({root!r})`" if in_kernel() else "`fntree restart {root}`"


def messages_shown(options: dict[str, Any]) -> bool:
    """Whether targets' `context().log` messages are printed at all."""
    return not options["quiet"] and logging.getLevelName(options["log_level"]) <= logging.WARNING


def configure_logging(options: dict[str, Any]) -> None:
    """fntree's records at `log_level` (ERROR at least when `quiet`); targets' messages at
    INFO when they are shown at all (`messages_shown`)."""
    level = logging.getLevelName(options["log_level"])
    if options["quiet"]:
        level = max(level, logging.ERROR)
    logger = logging.getLogger("fntree")
    logger.setLevel(level)
    shown = messages_shown(options)
    logging.getLogger("fntree.job").setLevel(logging.INFO if shown else logging.CRITICAL + 1)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[fntree] %(message)s"))
        logger.addHandler(handler)


def subscribers(displays: list[Observer], eventlog: EventLog,
                options: dict[str, Any]) -> Events:
    """The run's subscribers: the logging one (saying only what no display shows), the
    job store's event log, and the displays; messages reach only those that print them."""
    logger = LogObserver(
        messages=not any(getattr(d, "shows_messages", False) for d in displays),
        failures=not any(getattr(d, "shows_failures", False) for d in displays))
    everyone = [logger, eventlog, *displays]
    return Events(everyone, everyone if messages_shown(options) else [eventlog])


@contextlib.contextmanager
def interrupt_hint(root: Any) -> Iterator[None]:
    """SIGTERM stops the leader the way Ctrl-C does; either ends in `RunInterrupted`."""
    message = ("interrupted; workers stopped, the job store is kept. Continue with "
               + restart_hint().format(root=str(root)))
    main = threading.current_thread() is threading.main_thread()

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt) if main else None
    try:
        yield
    except KeyboardInterrupt:
        raise RunInterrupted(message, root) from None
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
