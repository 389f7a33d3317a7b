"""fntree's own threads in a worker, kept from reserving address space.

A worker runs a few threads of its own beside the job (live output, the peak
memory sampler, the local heartbeat, cache writers). By default each would
reserve far more address space than it uses: Python gives a thread an 8 MiB
stack, and glibc gives each thread that allocates a malloc arena of up to
64 MiB. Two such threads took a worker from 33 MB to 181 MB of address space.
That matters where the limit is on address space, not on use: Grid Engine's
`h_vmem` (and `ulimit -v`) would count it against the job, which would then get
MemoryError far below its `memory=`.

So a worker limits glibc to one malloc arena at boot (`lean_malloc`, unless
`MALLOC_ARENA_MAX` in its environment says otherwise), and starts its own
threads with 256 KiB stacks (`start_daemon`; a job's threads keep Python's
default). The same two threads then add about 0.5 MB. The cost is that threads
a job starts share that arena, which serialises their malloc calls.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from typing import Any

STACK = 256 << 10  # bytes of stack for fntree's own threads
_M_ARENA_MAX = -8  # mallopt's parameter number (glibc's malloc.h)


def lean_malloc() -> None:
    """One malloc arena for the whole process (glibc only; elsewhere nothing)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:  # the symbols already loaded: find_library would run ldconfig, 3 ms of CPU
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_ARENA_MAX, 1)
    except (OSError, AttributeError, TypeError):
        return  # not glibc: its allocator reserves no per-thread arenas this way


def start_daemon(target: Callable[..., Any], name: str, args: tuple[Any, ...] = ()
                 ) -> threading.Thread:
    """A daemon thread of fntree's own, with a small stack, started."""
    previous = threading.stack_size(STACK)
    try:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
    finally:
        threading.stack_size(previous)
    return thread
