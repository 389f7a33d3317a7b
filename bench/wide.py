"""Wide: 100 children, each with 1000 children of its own, and follow-ons summing.

100,202 jobs in all (the root, 100 middles, 100,000 leaves, 100 + 1 follow-ons).
Prints the wall time from the root's start to its value, jobs/s, the leader's
CPU time (this process's, less the sampler thread's) and µs of it per job, that
CPU by thread (the leader's loop in the caller's thread, the event log's writer,
compaction...: each thread's last sample from /proc, so a thread that lives less
than `--every` may be missed, and "other" is what the samples missed), its
peak RSS (the leader runs in this process: `ru_maxrss`, and its RSS sampled every
`--every` seconds, with the time of the peak), the job store's largest size seen
while running (sampled likewise) and its size and number of files after the run
(kept in a temp dir under `--dir`, then removed), the workers' CPU (this process's
reaped children) and the rate the machine's cores could give at that CPU per job.
`--repeat K` prints medians; `--report S` prints, every S seconds while it runs,
the jobs done, the rate over the last S seconds, the leader's RSS and the job
store's size (for long runs).

    python bench/wide.py --width 100 --leaves 1000
    python bench/wide.py --width 1000 --leaves 1000 --repeat 3
    python bench/wide.py --width 10000 --leaves 1000 --dir /big/disk --report 60
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import fntree
from fntree.runtime.events import Observer


@fntree.target
def leaf(i: int) -> int:
    return 1


@fntree.target
def add(values: list[int]) -> int:
    return sum(values)


@fntree.target
def middle(leaves: int) -> fntree.Call:
    return add([leaf(i) for i in range(leaves)])


@fntree.target
def total(values: list[int], started: float) -> tuple[int, float]:
    return sum(values), started


@fntree.target
def root(width: int, leaves: int) -> fntree.Call:
    return total([middle(leaves) for _ in range(width)], time.time())


def disk_usage(path: Path) -> tuple[int, int]:
    """Bytes and files under `path` (a file removed while it is counted is not counted: the
    leader renames and removes files as it runs)."""
    size = files = 0
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                size += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
            files += 1
    return size, files


def rss_bytes() -> int:
    """This process's resident set now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def children_cpu() -> float:
    """User + system CPU seconds of this process's reaped children (the workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def thread_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each live thread of this process, by native id."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except FileNotFoundError:
            continue  # the thread ended
        seconds[int(tid)] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


class Completions(Observer):
    """Counts the jobs completed (the leader calls it on its own thread)."""

    def __init__(self) -> None:
        self.done = 0

    def completed(self, name: str, result: object) -> None:
        self.done += 1


class Sampler(threading.Thread):
    """Samples the leader's RSS and the job store's size every `every` seconds; prints
    them with the jobs done every `report` seconds (0: never)."""

    def __init__(self, jobstore: Path, every: float, report: float,
                 completions: Completions) -> None:
        super().__init__(daemon=True)
        self.jobstore, self.every, self.report = jobstore, every, report
        self.completions = completions
        self.begun = time.monotonic()
        self.rss = self.store = 0
        self.rss_at = 0.0
        self.cpu = 0.0  # this thread's own CPU time, not the leader's
        self.threads: dict[int, tuple[str, float]] = {}  # native id: (name, CPU seconds)
        self.base = thread_cpu()  # what the threads there before the run had used
        self.halt = threading.Event()

    def sample_threads(self) -> None:
        names = {t.native_id: t.name for t in threading.enumerate()}
        for tid, cpu in thread_cpu().items():
            if tid in self.threads or tid in names:
                name = names.get(tid) or self.threads[tid][0]
                self.threads[tid] = (name, cpu)

    def run(self) -> None:
        last, last_done = self.begun, 0
        while not self.halt.wait(self.every):
            self.cpu = time.thread_time()
            self.sample_threads()
            rss = rss_bytes()
            if rss > self.rss:
                self.rss, self.rss_at = rss, time.monotonic() - self.begun
            size = disk_usage(self.jobstore)[0] if self.jobstore.exists() else 0
            self.store = max(self.store, size)
            now = time.monotonic()
            if self.report and now - last >= self.report:
                done = self.completions.done
                print(f"  {now - self.begun:7.0f} s: {done:,} jobs done, "
                      f"{(done - last_done) / (now - last):,.0f} jobs/s; leader RSS "
                      f"{rss / 2**20:,.0f} MiB (peak {self.rss / 2**20:,.0f}); job store "
                      f"{size / 2**20:,.1f} MiB (most {self.store / 2**20:,.1f}); load "
                      f"{os.getloadavg()[0]:.1f}", flush=True)
                last, last_done = now, done
            self.cpu = time.thread_time()


def once(width: int, leaves: int, every: float, report: float,
         where: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="fntree-bench-", dir=where) as scratch:
        jobstore = Path(scratch) / "jobstore"
        completions = Completions()
        sampler = Sampler(jobstore, every, report, completions)
        sampler.start()
        called, cpu = time.time(), time.process_time()
        workers = children_cpu()
        value, started = fntree.run(root(width, leaves), jobstore=jobstore,
                                    observers=[completions])
        now = time.time()
        workers = children_cpu() - workers
        sampler.halt.set()
        sampler.join()
        sampler.sample_threads()
        cpu = time.process_time() - cpu - sampler.cpu
        size, files = disk_usage(jobstore)
    assert value == width * leaves, value
    return {"wall": now - started, "whole": now - called, "rss": sampler.rss,
            "rss_at": sampler.rss_at, "store_max": max(sampler.store, size), "size": size,
            "files": files, "cpu": cpu, "workers": workers, "threads": by_thread(sampler, cpu),
            "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def by_thread(sampler: Sampler, cpu: float) -> dict[str, float]:
    """The leader's CPU seconds by thread name (threads of one name summed; the sampler's
    own left out), and "other": the rest of `cpu`."""
    split: dict[str, float] = {}
    for tid, (named, seconds) in sampler.threads.items():
        if tid != sampler.native_id:
            name = "leader loop" if tid == os.getpid() else named
            split[name] = split.get(name, 0.0) + seconds - sampler.base.get(tid, 0.0)
    split["other"] = max(0.0, cpu - sum(split.values()))
    return split


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=100, help="children of the root (100)")
    parser.add_argument("--leaves", type=int, default=1000, help="children of each (1000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs, medians printed (1)")
    parser.add_argument("--every", type=float, default=0.5, help="sampling interval (0.5 s)")
    parser.add_argument("--report", type=float, default=0.0,
                        help="print the progress every this many seconds (0: never)")
    parser.add_argument("--dir", default=None, help="where the job store goes (a temp dir)")
    args = parser.parse_args()
    jobs = 1 + args.width * (args.leaves + 2) + 1
    print(f"wide {args.width} x {args.leaves} ({jobs:,} jobs)", flush=True)
    runs = []
    for _ in range(args.repeat):
        run = once(args.width, args.leaves, args.every, args.report, args.dir)
        runs.append(run)
        print(f"fntree: {run['wall']:.2f} s root start to value, {jobs / run['wall']:,.0f} jobs/s; "
              f"leader CPU {run['cpu']:.2f} s ({run['cpu'] / jobs * 1e6:.1f} µs per job); "
              f"leader RSS sampled peak {run['rss'] / 2**20:,.0f} MiB at {run['rss_at']:.0f} s "
              f"(ru_maxrss so far {run['maxrss'] / 2**20:,.0f} MiB); job store at most "
              f"{run['store_max'] / 2**20:,.1f} MiB while running, {run['size']:,} bytes in "
              f"{run['files']} files after ({run['whole']:.2f} s for all of fntree.run)",
              flush=True)
        both = (run["cpu"] + run["workers"]) / jobs
        print(f"  workers CPU {run['workers']:.2f} s ({run['workers'] / jobs * 1e6:.1f} µs per "
              f"job, start-up included); leader and workers {both * 1e6:.1f} µs per job: "
              f"{os.cpu_count()} cores at most {(os.cpu_count() or 1) / both:,.0f} jobs/s",
              flush=True)
        print("  leader CPU by thread: " + ", ".join(
            f"{name} {seconds:.2f} s ({seconds / jobs * 1e6:.1f} µs per job)"
            for name, seconds in sorted(run["threads"].items(), key=lambda kv: -kv[1])),
            flush=True)
    if args.repeat > 1:
        def med(key: str) -> float:
            return statistics.median(run[key] for run in runs)
        print(f"median of {args.repeat}: {jobs / med('wall'):,.0f} jobs/s, leader CPU "
              f"{med('cpu') / jobs * 1e6:.1f} µs per job, leader RSS peak "
              f"{med('rss') / 2**20:,.0f} MiB, job store at most "
              f"{med('store_max') / 2**20:,.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
