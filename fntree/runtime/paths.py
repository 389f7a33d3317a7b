"""`StorePaths`: the one place that names the files of a job store (docs/jobstore.md).

The machine-local temp base, `<tmp>/fntree-<uid>/<store id>`, has a predictable
name, so `make_local_base` never takes it as found: the system temp dir must be
one where others cannot swap our entries (sticky, like /tmp), and each level
below it must be a real directory of ours that no one else can write
(`durable.make_private_dir`); otherwise fntree refuses it.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

from fntree.runtime.durable import check_shared_dir, make_private_dir
from fntree.runtime.records import job_hex

EVENT_PART = re.compile(r"events\.([1-9][0-9]*)\.log\.gz")  # StorePaths.event_part's names
EVENT_PART_TEMP = re.compile(r"\.events\.[1-9][0-9]*\.log\.gz\.[0-9]+\.tmp")  # and their temps


class StorePaths:
    """Every path inside the job store at `root`, and the machine-local temp paths."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.meta = self.root / "fntree.json"
        self.config = self.root / "config.pkl"
        self.lock = self.root / "leader.lock"
        self.journal_dir = self.root / "journal"
        self.logs = self.root / "logs"
        self.global_tmp = self.root / "tmp" / "g"
        self.batch = self.root / "batch"
        self.objects = self.root / "objects"  # values stored out of line (runtime/objects.py)

    def segment(self, number: int) -> Path:
        return self.journal_dir / f"{number}.log"

    def snapshot(self, number: int) -> Path:
        return self.journal_dir / f"snapshot.{number}"

    def log(self, job_id: int) -> Path:
        name = job_hex(job_id)
        return self.logs / name[:2] / f"{name}.log"

    @property
    def live_dir(self) -> Path:
        """Where workers copy the output of their running jobs (docs/logs.md)."""
        return self.logs / "live"

    def live(self, job_id: int) -> Path:
        """The running attempt's output so far, while it runs (fntree.runtime.live)."""
        return self.live_dir / f"{job_hex(job_id)}.log"

    def global_temp_dir(self, chain_id: int) -> Path:
        return self.global_tmp / job_hex(chain_id)

    def event_log(self) -> Path:
        """The run's events, appended as JSON lines for people and `fntree status/stats`."""
        return self.root / "events.log"

    def event_archive(self) -> Path:
        """Events archived by fntree before parts: gzip members, one per leader that finished."""
        return self.root / "events.log.gz"

    def event_part(self, number: int) -> Path:
        """Part `number` of the archived events: the event log as it was when it grew past
        its bound or its leader finished, gzip-compressed (fntree/runtime/eventlog.py)."""
        return self.root / f"events.{number}.log.gz"

    def event_rollup(self) -> Path:
        """What the event log's folded (removed) parts held, summed (runtime/eventrollup.py)."""
        return self.root / "events.rollup.json"

    def event_part_temp(self, number: int) -> Path:
        """Where this process writes part `number` before renaming it into place."""
        return self.root / f".events.{number}.log.gz.{os.getpid()}.tmp"

    def event_part_temps(self) -> list[Path]:
        """Parts being written, or left half-written by a leader killed while writing them."""
        with contextlib.suppress(FileNotFoundError):
            return [self.root / entry for entry in sorted(os.listdir(self.root))
                    if EVENT_PART_TEMP.fullmatch(entry)]
        return []

    def event_parts(self) -> list[Path]:
        """The archived event log's parts, oldest first."""
        numbers = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.listdir(self.root):
                match = EVENT_PART.fullmatch(entry)
                if match:
                    numbers.append(int(match[1]))
        return [self.event_part(n) for n in sorted(numbers)]

    @staticmethod
    def local_base(store_id: str) -> Path:
        """The machine-local directory under which workers of this store make temp dirs."""
        return Path(tempfile.gettempdir()) / f"fntree-{os.getuid()}" / store_id

    @staticmethod
    def make_local_base(store_id: str) -> Path:
        """`local_base(store_id)`, created owner-only and verified level by level."""
        tmp = Path(tempfile.gettempdir())
        check_shared_dir(tmp)
        return make_private_dir(StorePaths.local_base(store_id), anchor=tmp)
