"""How a stopped run speaks: the restart hint in a notebook and on a terminal, and Ctrl-C."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbclient
import nbformat

TESTS = Path(__file__).resolve().parent


def _error(cell: Any) -> dict[str, Any]:
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert len(errors) == 1, cell.outputs
    return dict(errors[0])


def _cell_text(cell: Any) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_notebook_failure_and_interrupt_point_to_fntree_restart(tmp_path: Path) -> None:
    """In a kernel, a failure and a Ctrl-C say `fntree.restart(path)`, show none of fntree's
    frames, and the restart then completes the run."""
    failed, stopped = str(tmp_path / "failed"), str(tmp_path / "stopped")
    started, flag = str(tmp_path / "started"), str(tmp_path / "flag")
    sources = [
        "import os, pathlib, signal, threading, time\nimport fntree",
        "@fntree.target\ndef boom(x):\n    return {}['k']",
        f"fntree.run(boom(1), jobstore={failed!r})",
        "@fntree.target\ndef nap(s, started, flag):\n"
        "    pathlib.Path(started).write_text('')\n"
        "    while not os.path.exists(flag):\n        time.sleep(0.1)\n    return s",
        "def interrupt():\n"
        f"    while not os.path.exists({started!r}):\n        time.sleep(0.1)\n"
        "    time.sleep(0.5)\n    os.kill(os.getpid(), signal.SIGINT)\n"
        "threading.Thread(target=interrupt, daemon=True).start()\n"
        f"fntree.run(nap(6, {started!r}, {flag!r}), jobstore={stopped!r})",
        f"pathlib.Path({flag!r}).write_text('')\nprint('restarted', fntree.restart({stopped!r}))",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    client = nbclient.NotebookClient(notebook, timeout=240, kernel_name="python3",
                                     allow_errors=True,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    cells = notebook.cells
    failure = _error(cells[2])
    shown = "\n".join(failure["traceback"])
    assert failure["ename"] == "WorkflowFailed"
    assert f"continue with `fntree.restart({failed!r})`" in shown, shown
    assert "`fntree restart" not in shown and "File " not in shown and "api.py" not in shown
    interrupt = _error(cells[4])
    shown = "\n".join(interrupt["traceback"])
    assert interrupt["ename"] == "RunInterrupted"
    assert f"Continue with `fntree.restart({stopped!r})`" in shown, shown
    assert "File " not in shown and "leader.py" not in shown and "api.py" not in shown
    assert "restarted 6" in _cell_text(cells[5])


def test_ctrl_c_of_fntree_run_ends_with_the_hint_and_130(tmp_path: Path) -> None:
    """SIGINT to `fntree run` stops it with exit 130 and the restart command, no traceback."""
    started, flag, store = tmp_path / "started", tmp_path / "flag", tmp_path / "store"
    command = [sys.executable, "-m", "fntree", "run", f"{TESTS / 'failing_workflows.py'}:slow",
               str(started), str(flag), "--jobstore", str(store), "--no-progress"]
    leader = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started.exists()
    os.kill(leader.pid, signal.SIGINT)
    _, err = leader.communicate(timeout=120)
    assert leader.returncode == 130, err
    assert f"Continue with `fntree restart {store}`" in err
    assert "Traceback" not in err
    flag.write_text("")
    again = subprocess.run([sys.executable, "-m", "fntree", "restart", str(store),
                            "--no-progress"], capture_output=True, text=True, cwd=tmp_path,
                           timeout=120)
    assert again.returncode == 0 and again.stdout.strip() == "'done'", again.stderr


def test_on_a_terminal_messages_are_in_the_pane_only(tmp_path: Path) -> None:
    """With the live display, a target's message is drawn in its pane, not logged above it."""
    leader_fd, follower_fd = pty.openpty()
    command = [sys.executable, "-m", "fntree", "run", f"{TESTS / 'failing_workflows.py'}:chatty",
               "2", "--jobstore", str(tmp_path / "store")]
    proc = subprocess.Popen(command, cwd=tmp_path, stdin=follower_fd, stdout=follower_fd,
                            stderr=follower_fd, env={**os.environ, "COLUMNS": "100"})
    os.close(follower_fd)
    screen = b""
    while True:
        try:
            chunk = os.read(leader_fd, 65536)
        except OSError:  # the terminal closed: the run ended
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader_fd)
    assert proc.wait(timeout=120) == 0
    text = screen.decode(errors="replace")
    assert "note 1 of chatty" in text  # in the display's message pane
    assert "[fntree] chatty" not in text  # and not as a log line as well
