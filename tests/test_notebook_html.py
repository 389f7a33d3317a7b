"""The notebook display's HTML (NotebookProgress) from a real kernel, rendered in a real
headless Chromium at a notebook's width and looked at: the live bundle and the final summary."""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbclient
import nbformat
import ux_workflows as ux
from browser import Image, render

import fntree
from fntree.progress.displays import NotebookProgress
from fntree.runtime.records import Result

TESTS = Path(__file__).resolve().parent

SETUP = f"""import sys
sys.path.insert(0, {str(TESTS)!r})
import fntree, ux_workflows as ux"""
GOOD = "fntree.run(ux.spread(12, 0.05), jobstore='good', max_cpus=2)"
BAD = "fntree.run(ux.founder('no-such-flag'), jobstore='bad', max_cpus=2)"

# The output area of JupyterLab, as far as a display's HTML sees it: a white cell of a
# notebook's width, its fonts, its padding.
PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; background: #fff; font-family: system-ui, -apple-system, sans-serif;
       font-size: 14px; }}
.cell {{ width: 860px; margin: 12px 24px; padding: 4px 0 4px 70px; position: relative; }}
.prompt {{ position: absolute; left: 0; color: #d84315; font-family: monospace; }}
.out {{ overflow-x: auto; }}
</style></head><body>{cells}
<script>
var over = [];
document.querySelectorAll(".out").forEach(function (o, k) {{
  if (o.scrollWidth > o.clientWidth + 1) {{ over.push(k); }}
}});
document.body.setAttribute("data-overflow", over.join(","));
document.body.setAttribute("data-checked", "1");
</script></body></html>"""


def _outputs(tmp_path: Path) -> list[tuple[str, str]]:
    """(text/plain, text/html) of each cell's fntree display, run by a real kernel."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in (SETUP, GOOD, BAD)]
    nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = []
    for cell in notebook.cells[1:]:
        displays = [o for o in cell.outputs if o.output_type == "display_data"]
        assert len(displays) == 1, cell.outputs
        shown.append((displays[0]["data"]["text/plain"], displays[0]["data"]["text/html"]))
    return shown


class _Snapshot(NotebookProgress):
    """The notebook display, its HTML bundle kept when half the work is done, never shown."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: dict[str, str] = {}

    def _show(self) -> None:
        pass

    def completed(self, name: str, result: Result) -> None:
        super().completed(name, result)
        if name == "work" and not self.kept and self.totals().done >= 6:
            self.kept = self._bundle()


def test_notebook_display_renders_in_chromium(tmp_path: Path) -> None:
    """The live and final displays of a good and a failed run: drawn, unclipped, no error."""
    live = _Snapshot()
    fntree.run(ux.spread(12, 0.3), jobstore=tmp_path / "live", max_cpus=2, observers=[live])
    assert "running" in live.kept["text/plain"]
    (good_text, good), (bad_text, bad) = _outputs(tmp_path)
    assert "fntree completed" in good_text and "14 / 14 jobs done" in good_text
    assert "picky" in bad_text
    cells = "".join(f'<div class="cell"><span class="prompt">[{k}]:</span><div class="out">'
                    f"{body}</div></div>"
                    for k, body in enumerate((live.kept["text/html"], good, bad), start=1))
    page = tmp_path / "notebook.html"
    page.write_text(PAGE.format(cells=cells), encoding="utf-8")
    png = tmp_path / "notebook.png"
    dom, errors = render(page.as_uri(), png, size=(1000, 1100))
    assert not errors
    attrs = re.search(r"<body([^>]*)>", dom)
    assert attrs is not None and 'data-checked="1"' in attrs.group(1)
    assert 'data-overflow=""' in attrs.group(1), "a display is wider than the notebook's cell"
    text = html.unescape(re.sub(r"<[^>]+>", "", dom))
    assert "fntree completed" in text and "picky" in text
    image = Image(png)
    assert image.ink() > 0.02  # drawn, not a blank page
    assert image.count("#ffffff") < image.width * image.height  # and not one colour
