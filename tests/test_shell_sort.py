"""The shell version of the sort example (leaves `sort`, merges `sort -m`) is exact."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # examples.sort, importable by the workers too

from examples.sort import shell_sort  # noqa: E402 (after the path it needs)
from examples.sort.sort import generate, read_lines  # noqa: E402


def test_shell_sort_output_is_pythons_sort(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """sort and sort -m through shell targets give exactly sorted() of the input's lines."""
    source = generate(tmp_path / "in put", 600_000, seed=15)
    out = tmp_path / "sorted out"
    code = shell_sort.main(["--input", str(source), "--output", str(out), "--max-bytes",
                            "100K", "--jobstore", str(tmp_path / "store")])
    assert code == 0 and "OK" in capsys.readouterr().out
    assert out.read_bytes() == b"".join(sorted(read_lines(source)))
