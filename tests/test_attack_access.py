"""Another local user: what a run under umask 000 makes outside the store is owner-only too."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import fntree

@fntree.target(cache=True)
def main(n: int = 3) -> int:
    return n * 2
"""


def _modes(top: Path) -> dict[str, int]:
    return {str(p.relative_to(top)): stat.S_IMODE(p.lstat().st_mode)
            for p in [top, *top.rglob("*")] if p.is_dir()}


def test_missing_parents_of_a_cache_and_of_a_jobstore_root_are_made_owner_only(
        tmp_path: Path) -> None:
    """Under umask 000, the missing parents fntree makes for a cache directory and for a
    jobstore-root are 0700, as those of a job store: no one else may replace what is in them."""
    (tmp_path / "wf.py").write_text(SCRIPT)
    (tmp_path / "fntree.toml").write_text(f'jobstore-root = "{tmp_path / "runs" / "deep"}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("FNTREE_")}
    out = subprocess.run([sys.executable, "-m", "fntree", "run", "wf.py:main", "--no-progress",
                          "--cache", str(tmp_path / "caches" / "deep" / "cache")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env,
                         umask=0)
    assert out.returncode == 0 and out.stdout.strip() == "6", out.stderr
    for top in (tmp_path / "caches", tmp_path / "runs"):
        modes = _modes(top)
        assert modes and all(mode == 0o700 for mode in modes.values()), modes
