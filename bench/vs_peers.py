"""fntree side by side with Dask, Parsl, Ray and redun: four workloads, interleaved, medians.

The workloads (bench/peers/common.py), each written the way its system's own docs write it
(bench/peers/<system>_side.py says how, and where a system could not do it as asked):

1. fanout: N no-op tasks and a task summing their values (N = 10,000);
2. chain: N dependent tasks, each taking the one before's value (N = 2,000);
3. fib: fib(18) as recursive dynamic tasks, each call making its two children at run time
   (8,361 calls);
4. cpu: 200 tasks of ~50 ms of pure-Python work and their sum, where two cores matter.

Every case runs in a process of its own (so a crash or a hang takes only that case down; a
case over `--timeout` seconds has its process group killed and counts as not finished), in
rounds: for round in 1..R, for system, for workload. fntree runs with the Python running this
script (the repository's virtual environment); the peers with the peers' virtual environment
(`--peers-python`, or $FNTREE_PEERS_PYTHON, or .peers-venv/bin/python at the repository's
root), which bench/README.md says how to install. Each round also times the cpu workload's
tasks serially in one process, to give the cpu workload's parallel efficiency:
serial time / (cores x wall).

`run` is from the first submission to the final value in the caller's hands; the start of a
peer's cluster (Dask's LocalCluster, Parsl's HTEX block, Ray) is `startup`, apart. fntree's
`run` is all of `fntree.run`, its workers' start-up included. `cpu` is the processor time of
the case's whole process tree (as far as its processes were reaped), start-up included.

    python3 -m venv .peers-venv && .peers-venv/bin/pip install -r bench/peers-requirements.txt
    .venv/bin/python bench/vs_peers.py --rounds 3 --json /tmp/vs-peers.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))

import common

HERE = Path(__file__).resolve().parent
SIDES = HERE / "peers"

# name: (side script, mode, uses the peers' Python)
SYSTEMS: dict[str, tuple[str, str, bool]] = {
    "fntree": ("fntree_side.py", "local", False),
    "dask-threads": ("dask_side.py", "threads", True),
    "dask-distributed": ("dask_side.py", "distributed", True),
    "parsl-threads": ("parsl_side.py", "threads", True),
    "parsl-htex": ("parsl_side.py", "htex", True),
    "ray": ("ray_side.py", "local", True),
    "redun": ("redun_side.py", "local", True),
}

DURABILITY = {
    "fntree": "yes: each completion fsynced to the job store's journal before it counts; "
              "a killed run resumes with `fntree restart`",
    "dask-threads": "no: graph and results in the caller's memory; a killed run starts over",
    "dask-distributed": "no: results in the scheduler's and workers' memory; if the scheduler "
                        "or client dies every future is lost",
    "parsl-threads": "no (by default): results in the caller's memory; opt-in checkpoints "
                     "let a new run skip checkpointed apps",
    "parsl-htex": "no (by default): as parsl-threads; workers are separate processes",
    "ray": "no: results in the object store's memory; a dead driver loses its tasks; "
           "retries only within a run",
    "redun": "yes: each call's result recorded in its SQLite call graph; a rerun reuses "
             "every recorded call",
}

RATE_UNIT = {"fanout": "tasks/s", "chain": "hops/s", "fib": "calls/s", "cpu": "efficiency"}


def run_case(command: list[str], timeout: float) -> dict[str, Any]:
    """Run one case's process (in its own process group); its RESULT, or why there is none."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True, cwd=SIDES)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)  # the case stops its system's own processes
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
        return {"error": f"did not finish in {timeout:.0f} s", "timeout": True}
    finally:
        with contextlib.suppress(ProcessLookupError):  # what the case left in its group
            os.killpg(process.pid, signal.SIGKILL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    for line in out.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT "):])
            result.update(cpu=cpu, wall=time.perf_counter() - began)
            if not result["ok"]:
                result["error"] = f"wrong value {result['value']} (want {result['expected']})"
            return result
    tail = (err.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {process.returncode}: {tail[:200]}"}


def command_for(system: str, workload: str, n: int | None, peers_python: str) -> list[str]:
    script, mode, peer = SYSTEMS[system]
    python = peers_python if peer else sys.executable
    command = [python, str(SIDES / script), "--mode", mode, "--workload", workload]
    return [*command, "--n", str(n)] if n is not None else command


def describe(result: dict[str, Any], workload: str, serial: float | None) -> str:
    if "error" in result:
        return result["error"]
    rate = f"{result['units'] / result['run']:,.0f} {RATE_UNIT[workload]}"
    if workload == "cpu":
        rate = f"efficiency {efficiency(result, serial):.2f}"
    return (f"run {result['run']:.2f} s, {rate}, start-up {result['startup']:.2f} s, "
            f"cpu {result['cpu']:.1f} s, caller RSS {result['rss_mib']:.0f} MiB")


def efficiency(result: dict[str, Any], serial: float | None) -> float:
    cores = os.cpu_count() or 1
    return (serial or float("nan")) / (cores * result["run"])


def median_row(runs: list[dict[str, Any]], workload: str, serial: float | None) -> str:
    done = [r for r in runs if "error" not in r]
    if len(done) < len(runs):
        failed = sorted({r["error"] for r in runs if "error" in r})
        note = f"{len(runs) - len(done)} of {len(runs)}: {'; '.join(failed)}"
        if not done:
            return note
    else:
        note = ""
    run = statistics.median(r["run"] for r in done)
    if workload == "cpu":
        figure = f"efficiency {(serial or float('nan')) / ((os.cpu_count() or 1) * run):.2f}"
    else:
        figure = f"{done[0]['units'] / run:,.0f} {RATE_UNIT[workload]}"
    runs_s = "/".join(f"{r['run']:.2f}" for r in done)
    extra = (f"start-up {statistics.median(r['startup'] for r in done):.2f} s, "
             f"cpu {statistics.median(r['cpu'] for r in done):.1f} s, "
             f"RSS {statistics.median(r['rss_mib'] for r in done):.0f} MiB")
    return f"{figure} (run {run:.2f} s; runs {runs_s}; {extra})" + (f"; {note}" if note else "")


def default_peers_python() -> str:
    return os.environ.get("FNTREE_PEERS_PYTHON") or str(HERE.parent / ".peers-venv/bin/python")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are printed")
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS))
    parser.add_argument("--workloads", nargs="+", choices=common.WORKLOADS,
                        default=list(common.WORKLOADS))
    parser.add_argument("--n", type=int, default=None,
                        help="one size for every workload chosen (their defaults otherwise)")
    parser.add_argument("--sizes", nargs="+", default=[], metavar="WORKLOAD=N",
                        help="sizes for some workloads, e.g. fanout=2000 fib=14")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per case (300)")
    parser.add_argument("--peers-python", default=default_peers_python(),
                        help="the peers' Python ($FNTREE_PEERS_PYTHON, .peers-venv/bin/python)")
    parser.add_argument("--json", type=Path, help="also write every case's result here")
    args = parser.parse_args()
    args.sizes = dict(item.split("=", 1) for item in args.sizes)
    if not set(args.sizes) <= set(common.WORKLOADS):
        parser.error(f"--sizes names workloads of {', '.join(common.WORKLOADS)} only")
    peers = [s for s in args.systems if SYSTEMS[s][2]]
    if peers and not Path(args.peers_python).exists():
        parser.error(f"the peers' Python {args.peers_python} does not exist; install it as "
                     "bench/README.md says, or pass --peers-python")
    return args


def main() -> int:
    args = parse_args()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        s: {w: [] for w in args.workloads} for s in args.systems}
    serials: list[float] = []
    sizes = {w: int(args.sizes.get(w) or args.n or common.SIZES[w]) for w in args.workloads}
    print(f"sizes {sizes}; {args.rounds} rounds; timeout {args.timeout:.0f} s; "
          f"load average at start: {os.getloadavg()}", flush=True)
    for round_ in range(1, args.rounds + 1):
        if "cpu" in args.workloads:
            tasks = args.sizes.get("cpu") or args.n or common.SIZES["cpu"]
            serial = run_case([sys.executable, str(SIDES / "common.py"), "serial", str(tasks)],
                              args.timeout)
            serials.append(serial.get("run", float("nan")))
            print(f"round {round_} serial cpu: {serials[-1]:.2f} s", flush=True)
        for system in args.systems:
            for workload in args.workloads:
                earlier = results[system][workload]
                if earlier and earlier[0].get("timeout"):  # a case that hung hangs again
                    print(f"round {round_} {system:<16} {workload:<6} not run again: "
                          f"{earlier[0]['error']} in round 1", flush=True)
                    continue
                n = int(args.sizes[workload]) if workload in args.sizes else args.n
                command = command_for(system, workload, n, args.peers_python)
                result = run_case(command, args.timeout)
                results[system][workload].append(result)
                shown = describe(result, workload, serials[-1] if serials else None)
                print(f"round {round_} {system:<16} {workload:<6} {shown}", flush=True)
    serial = statistics.median(serials) if serials else None
    print(f"\nmedians of {args.rounds} (load average at end: {os.getloadavg()})")
    if serial is not None:
        print(f"cpu workload serially in one process: {serial:.2f} s")
    for system in args.systems:
        print(f"{system}: durable: {DURABILITY[system]}")
        for workload in args.workloads:
            print(f"  {workload:<6} {median_row(results[system][workload], workload, serial)}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "serial": serials}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
