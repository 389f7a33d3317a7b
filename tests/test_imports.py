"""What `import fntree` and a worker's start import: only what they need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fntree

HOME = str(Path(fntree.__file__).resolve().parent.parent)


def _modules(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    done = subprocess.run(
        [sys.executable, "-c", f"import json, sys; {code}; print(json.dumps(list(sys.modules)))"],
        capture_output=True, text=True, timeout=120, check=True, cwd=HOME)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_import_fntree_imports_neither_the_display_nor_the_leader() -> None:
    """`import fntree` loads the DSL, and no rich, no leader, no job store, no plug-in
    registry."""
    loaded = _modules("import fntree")
    assert "fntree.dsl" in loaded
    assert not {"rich", "fntree.api", "fntree.runtime.leader", "fntree.runtime.store",
                "importlib.metadata"} & loaded


def test_a_worker_imports_no_leader_side() -> None:
    """A local worker's imports hold no leader, job store, display or plug-in registry."""
    loaded = _modules("import fntree._worker, fntree.batch.local_worker")
    assert "fntree.runtime.worker" in loaded
    assert not {"rich", "fntree.api", "fntree.runtime.leader", "fntree.runtime.store",
                "fntree.runtime.journal", "fntree.batch.local", "importlib.metadata"} & loaded


def test_public_names_load_on_first_use() -> None:
    """Every name in `fntree.__all__` resolves, and `from fntree import *` gives them all."""
    namespace: dict[str, object] = {}
    exec("from fntree import *", namespace)
    assert set(fntree.__all__) <= set(namespace)
    assert fntree.run is fntree.api.run
    assert fntree.sh is fntree.shell_target.sh
    assert set(fntree.__all__) <= set(dir(fntree))
