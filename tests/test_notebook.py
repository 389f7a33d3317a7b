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
    lines = {line.split()[0]: line.split()[1:6] for line in text.splitlines()
             if line.startswith(("msort ", "merge "))}
    assert lines == {"msort": ["0", "0", "255", "0", "0"], "merge": ["0", "0", "127", "0", "0"]}
    assert "<pre" in displays[0]["data"]["text/html"]
    assert client.seen["update_display_data"] >= 1
    printed = "".join(o.get("text", "") for o in code[-1].outputs if o.output_type == "stream")
    assert "sorted 20,000 numbers with fntree: 0.0000 ... 1.0000" in printed
