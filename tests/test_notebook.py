"""The example notebook, executed for real by a Jupyter kernel (nbclient + ipykernel)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import nbclient
import nbformat

NOTEBOOK = Path(__file__).parent.parent / "examples" / "notebook" / "sort.ipynb"


class _CountingClient(nbclient.NotebookClient):  # type: ignore[misc]
    """Counts the kernel's messages by type, to see the display updated in place."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: Counter[str] = Counter()

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        self.seen[msg["msg_type"]] += 1
        return super().process_message(msg, cell, cell_index)


def test_sort_notebook_runs_and_shows_progress(tmp_path: Path) -> None:
    """The notebook's targets run on workers; the cell shows the progress; the value is sorted."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = _CountingClient(notebook, timeout=180, kernel_name="python3",
                             resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for cell in code:
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.outputs
    run_cell = next(cell for cell in code if "fntree.run(" in cell.source)
    displays = [o for o in run_cell.outputs if o.output_type == "display_data"]
    assert len(displays) == 1, run_cell.outputs  # one display, updated in place
    text = displays[0]["data"]["text/plain"]
    assert "fntree completed" in text
    assert "382 / 382 jobs done" in text  # 255 msort + 127 merge jobs for 20,000 numbers
    lines = {line.split()[0]: line.split()[1:7] for line in text.splitlines()
             if line.startswith(("msort ", "merge "))}  # waiting ready queued running done failed
    assert lines == {"msort": ["0", "0", "0", "0", "255", "0"],
                     "merge": ["0", "0", "0", "0", "127", "0"]}
    assert "<pre" in displays[0]["data"]["text/html"]
    assert client.seen["update_display_data"] >= 1
    printed = "".join(o.get("text", "") for o in code[-1].outputs if o.output_type == "stream")
    assert "sorted 20,000 numbers with fntree: 0.0000 ... 1.0000" in printed


def _cell_text(cell: Any) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_edited_cells_are_seen_by_the_next_run_and_restart(tmp_path: Path) -> None:
    """A re-executed cell (a global and a helper changed) changes the next run and a restart."""
    store = tmp_path / "store"
    sources = [
        "import fntree",
        "THRESHOLD = 10\ndef helper(x):\n    return x * 100",
        "@fntree.target\ndef check(x):\n    return (x > THRESHOLD, helper(x))",
        "print('value', fntree.run(check(7)), check.fn(7))",
        "def helper2(x):\n    raise ValueError('helper2 is broken')",
        "@fntree.target\ndef boom(x):\n    return helper2(x)",
        f"try:\n    fntree.run(boom(3), jobstore={str(store)!r}, retry_count=0)\n"
        "except fntree.WorkflowFailed:\n    print('failed')",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    client = nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    cells = notebook.cells
    with client.setup_kernel():
        for index, cell in enumerate(cells):
            client.execute_cell(cell, index)
        assert "value (False, 700) (False, 700)" in _cell_text(cells[3])
        assert "failed" in _cell_text(cells[6])
        cells[1].source = "THRESHOLD = 1\ndef helper(x):\n    return -x"
        client.execute_cell(cells[1], 1)
        client.execute_cell(cells[3], 3)
        assert "value (True, -7) (True, -7)" in _cell_text(cells[3])
        cells[4].source = "def helper2(x):\n    return x * 2"
        client.execute_cell(cells[4], 4)
        cells[6].source = f"print('restarted', fntree.restart({str(store)!r}))"
        client.execute_cell(cells[6], 6)
    printed = _cell_text(cells[6])
    assert "restarted 6" in printed
    assert ("the code of target `boom` (__main__.boom (a notebook)) changed since its jobs were "
            "made: no job completed with the old code; 1 live job(s) will run with the new "
            "code") in printed
