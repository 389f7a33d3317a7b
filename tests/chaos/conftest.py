"""The chaos suite's tally, printed at the end of the run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

TALLY = {"leader kills": 0, "commit-window kills": 0, "worker kills injected": 0,
         "worker kills from outside": 0, "worker stops": 0, "worker continues": 0,
         "leader stops": 0, "disk fills": 0, "leader stops on a full disk": 0,
         "job attempts failed on a full disk": 0,
         "raises injected": 0, "cache hits": 0, "trees completed": 0, "jobs in those trees": 0,
         "restarts": 0, "check runs": 0}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if any(TALLY.values()):
        parts = ", ".join(f"{value} {name}" for name, value in TALLY.items())
        terminalreporter.write_line(f"chaos: {parts}; no work lost or done twice")


# The chaos tests share tests/processes.py with the other end-to-end tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
