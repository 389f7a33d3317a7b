"""Targets the security tests run, also as a script: `python security_workflows.py DIR STORE`.

`hold(dir)` keeps a secret in its local temp dir and its chain's global temp
dir, says where (`DIR/started`), waits for `DIR/go`, then returns the secret as
it reads it back: a test looks at (or attacks) the temp dirs while the job runs.
As a script it runs `hold` in the job store STORE and prints the value, or
`ERROR <type>: <message>` and exits 3.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import fntree

SECRET = "the secret of the job"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w") as f:
        f.write(text)


@fntree.target
def hold(directory: str) -> str:
    ctx = fntree.context()
    local = ctx.local_temp_dir / "secret"
    _write_private(local, SECRET)
    _write_private(ctx.global_temp_dir / "secret", SECRET)
    print("holding the secret")  # so that the job has a log
    _write_private(Path(directory) / "started.tmp", str(local))
    os.rename(Path(directory) / "started.tmp", Path(directory) / "started")
    deadline = time.monotonic() + 300
    while not (Path(directory) / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return local.read_text()


def main(directory: str, store: str) -> int:
    try:
        value = fntree.run(hold(directory), jobstore=store)
    except fntree.FntreeError as exc:
        print(f"ERROR {type(exc).__name__}: {exc}", flush=True)
        return 3
    print(value, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
