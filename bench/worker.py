"""Worker: the CPU a worker spends per job, and on starting, measured in one process.

A `JobRunner` (fntree/runtime/worker.py) on a durable job store in a temp dir runs
packets of no-op tasks as a local worker would, without a leader: the CPU per job
(user + system of this process, its helper threads included) is the best of
`--rounds` rounds of N jobs, so load from other processes shifts it little. Then
the CPU of a worker process started as the local batch system starts one, told to
stop at once (its imports and its runner's set-up), less a bare `python -c pass`:
the median of `--starts` starts.

    python bench/worker.py 5000 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fntree
from fntree import _worker
from fntree.batch import base
from fntree.batch.base import Res, Task
from fntree.compiler import root_spec
from fntree.runtime.worker import JobRunner

PACKET = 64  # tasks a packet, about what the local batch system hands a worker at fan-out


@fntree.target
def noop(i: int) -> int:
    return i


def tasks(n: int) -> tuple[list[Task], dict[bytes, bytes]]:
    """N no-op tasks, and the functions they name."""
    made, fns = [], {}
    for i in range(n):
        spec, named = root_spec(noop(i))
        fns.update(named)
        made.append(Task(spec.job_id + i, 1, spec.name, spec.fn_key, spec.args, (), 1,
                         Res(None, None, 1.0, 0)))
    return made, fns


def per_job_us(runner: JobRunner, work: list[Task]) -> float:
    """CPU µs a job, running `work` in packets."""
    started = time.process_time()
    for i in range(0, len(work), PACKET):
        for results in runner.run_packet(work[i:i + PACKET]):
            assert results[0].ok, results[0].message
    return (time.process_time() - started) / len(work) * 1e6


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bare_cpu() -> float:
    """CPU seconds of `python -c pass`."""
    before = children_cpu()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return children_cpu() - before


def boot_cpu(store: Path, local: Path) -> float:
    """CPU seconds of a local worker process that is told to stop as soon as it listens."""
    boot = getattr(base, "WORKER_BOOT", None)  # an older fntree started `-m fntree._worker`
    command = ([sys.executable, "-c", boot, base.FNTREE_HOME] if boot else
               [sys.executable, "-m", "fntree._worker"])
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    before = children_cpu()
    worker = subprocess.Popen([*command, "pipe", str(to_r), str(from_w), str(store),
                               str(local), str(2 << 20), str(os.getpid())],
                              pass_fds=(to_r, from_w))
    os.close(to_r)
    os.close(from_w)
    stop = pickle.dumps(("stop",))
    os.write(to_w, struct.pack("<I", len(stop)) + stop)
    worker.wait()
    for fd in (to_w, from_r):
        os.close(fd)
    return children_cpu() - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=5000, help="jobs a round (5000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best is printed")
    parser.add_argument("--starts", type=int, default=5, help="worker starts; the median")
    args = parser.parse_args()
    if args.n < 1 or args.rounds < 1 or args.starts < 1:
        parser.error("N, --rounds and --starts must be at least 1")
    work, fns = tasks(args.n)
    with tempfile.TemporaryDirectory(prefix="fntree-bench-") as scratch:
        store = Path(scratch) / "store"
        os.makedirs(store / "objects")
        # the hooks fntree/_worker.py gives a runner (an older fntree had fewer)
        hooks = {key: getattr(_worker, name) for key, name in
                 (("describe", "describe"), ("identify", "target_identity"))
                 if hasattr(_worker, name)}
        runner = JobRunner(store, Path(scratch) / "local", _worker.execute, **hooks)
        runner.learn(fns)
        try:
            rounds = [per_job_us(runner, work) for _ in range(args.rounds)]
        finally:
            runner.close()
        boot = [boot_cpu(store, Path(scratch) / f"boot-{k}") - bare_cpu()
                for k in range(args.starts)]
    print(f"worker CPU per no-op job: {min(rounds):.1f} us (best of {args.rounds} rounds of "
          f"{args.n:,}; median {statistics.median(rounds):.1f} us)")
    print(f"worker start: {statistics.median(boot) * 1e3:.0f} ms of CPU beyond a bare python "
          f"(median of {args.starts})")
    print(f"load average: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
