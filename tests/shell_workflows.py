"""Shell targets for the tests of fntree/shell*.py (importable, so workers load them by name)."""

from __future__ import annotations

from pathlib import Path

import fntree


@fntree.shell(capture=True)
def echo(value: str) -> str:
    """The value, printed by the shell (quoting)."""
    return fntree.sh("printf '%s' {value}", value=value)


@fntree.shell(capture=True)
def echo_words(values: list[str]) -> str:
    """Each value on its own line: a list becomes several quoted words."""
    return fntree.sh("printf '%s\\n' {values}", values=values)


@fntree.shell(capture=True)
def echo_argv(value: str) -> list[str]:
    """The value, printed by printf run without a shell."""
    return ["printf", "%s", value]


@fntree.target
def echo_all(values: list[str]) -> fntree.Spawn:
    """Echo each value in its own job, through bash and through argv; collect the results."""
    calls = [echo(v) for v in values] + [echo_argv(v) for v in values]
    return fntree.children(calls).then(collect(calls))


@fntree.target
def collect(values: list[str]) -> list[str]:
    return values


@fntree.shell(outputs=["out"])
def copy_upper(src: Path, out: Path) -> str:
    """`src` in capitals, written to `out`."""
    return fntree.sh("tr a-z A-Z < {src} > {out}", src=src, out=out)


@fntree.target
def read(path: Path) -> str:
    return Path(path).read_text()


@fntree.shell(outputs=["out"], retries=0)
def slow_write(out: str, pid_file: str) -> str:
    """Write half of `out`, note its pid, then sleep before writing the rest."""
    return fntree.sh("printf 'first half\\n' > {out}; echo $$ > {pid_file}; sleep 300.25; "
                     "printf 'second half\\n' >> {out}", out=out, pid_file=pid_file)


@fntree.shell(retries=0)
def fail_with(status: int) -> str:
    """Write to both streams, then exit with `status`."""
    return fntree.sh("echo 'on stdout'; for i in $(seq 1 40); do echo \"noise $i\" >&2; done; "
                     "echo 'the real cause: disk on fire' >&2; exit {status}", status=status)


@fntree.shell(retries=0)
def killed_by(signal_name: str) -> str:
    """The shell kills itself with a signal."""
    return fntree.sh("echo 'about to die' >&2; kill -{sig} $$", sig=signal_name)


@fntree.shell(retries=0)
def argv_killed() -> list[str]:
    """A tool run without a shell that kills itself with SIGKILL."""
    return ["python3", "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]


@fntree.shell(retries=0)
def missing_tool() -> list[str]:
    return ["fntree-no-such-tool-here", "x"]


@fntree.shell(outputs=["out"], retries=0)
def forgets_output(out: str) -> str:
    return "true"


@fntree.shell(cpu=2, memory="300MiB", capture=True)
def cores() -> str:
    """The resources the command sees, in its environment and interpolated."""
    return fntree.sh("echo $FNTREE_CPUS $OMP_NUM_THREADS $MKL_NUM_THREADS $FNTREE_MEMORY_MB "
                     "{cpu} {memory_mb}; test -d \"$TMPDIR\"")


@fntree.shell(capture=8)
def chatty() -> str:
    return "echo 'more than eight bytes'"


@fntree.shell(time="1h")
def sleeper(seconds: float, marker: str) -> str:
    """A command tree (bash, a background child, a grandchild) that sleeps; `marker` names it."""
    return fntree.sh("bash -c 'sleep {s}; : {m}' & sleep {s}; : {m}; wait",
                     s=seconds, m=marker)


@fntree.shell(outputs=["out"], retries=5)
def chunk(i: int, out: str) -> str:
    """Write a two-line file slowly, so kills land mid-write."""
    return fntree.sh("printf 'line %s\\n' {i} > {out}; sleep 0.3; printf 'end %s\\n' {i} >> {out}",
                     i=i, out=out)


@fntree.target(retries=5)
def chunks(n: int, directory: str) -> fntree.Spawn:
    """`n` chunk files in `directory`; the value is their contents, in order."""
    calls = [chunk(i, f"{directory}/chunk {i}.txt") for i in range(n)]
    return fntree.children(calls).then(read_all(calls))


@fntree.target(retries=5)
def read_all(paths: list[Path]) -> list[str]:
    return [Path(p).read_text() for p in paths]


def chunk_text(i: int) -> str:
    return f"line {i}\nend {i}\n"


@fntree.shell(outputs=["out"], cache=True)
def cached_upper(src: Path, out: Path, log: str) -> str:
    """`src` in capitals into `out`, noting each run in `log`."""
    return fntree.sh("echo ran >> {log}; tr a-z A-Z < {src} > {out}", src=src, out=out, log=log)


@fntree.shell(outputs=["out"], cache=True, version="2.0")
def versioned(src: Path, out: Path, log: str) -> str:
    return fntree.sh("echo ran >> {log}; cp {src} {out}", src=src, out=out, log=log)


@fntree.shell(retries=0)
def child_killed() -> str:
    """A command whose child dies by SIGKILL: bash exits 137."""
    return "sleep 30 & kill -9 $!; wait $!"


@fntree.shell(outputs=["out"], retries=0)
def fails_after_writing(out: str) -> str:
    return fntree.sh("echo whole > {out}; false", out=out)
