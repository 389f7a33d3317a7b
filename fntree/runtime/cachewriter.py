"""The cache's writer threads: entries queued by a worker or the leader, written off their path.

See fntree/runtime/cache.py for the entries and their atomic writes.
"""

from __future__ import annotations

import queue
from typing import TYPE_CHECKING, Any

from fntree.batch.threads import start_daemon

if TYPE_CHECKING:
    from fntree.runtime.cache import Cache


class Writer:
    """Threads that write queued entries, started at the first one.

    Several, because a file system commits the fsyncs that are in flight together:
    four writers give about five times the entries per second of one.
    """

    THREADS = 4

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self._queue: queue.Queue[tuple[bytes, str, Any]] = queue.Queue()
        self._failed: list[str] = []
        self._started = False

    def put(self, key: bytes, name: str, value: Any) -> None:
        if not self._started:
            self._started = True
            for k in range(self.THREADS):
                start_daemon(self._loop, f"fntree-cache-{k}")
        self._queue.put((key, name, value))

    def _loop(self) -> None:
        while True:
            key, name, value = self._queue.get()
            warning = self.cache.put(key, name, value)
            if warning:
                self._failed.append(warning)
            self._queue.task_done()

    def drain(self) -> None:
        if self._started:
            self._queue.join()

    def failures(self) -> list[str]:
        failed, self._failed = self._failed, []
        return failed
