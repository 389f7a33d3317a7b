"""The chaos suite's tally, printed at the end of the run (by tests/conftest.py)."""

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


def pytest_sessionfinish(session: Any) -> None:
    """Hand the tally to tests/conftest.py, which prints it, from an xdist worker too."""
    session.config.chaos_tally = dict(TALLY)
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["chaos_tally"] = dict(TALLY)


# The chaos tests share tests/processes.py with the other end-to-end tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
