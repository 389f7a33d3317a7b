"""Code identity: code hashes that follow the code and the values it reads, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from fntree import identity

MODULE = textwrap.dedent('''
    import math
    import fntree

    LIMIT = 3
    NAMES = {"a", "b", "c", "d"}

    def helper(x):
        return x * LIMIT + len(NAMES)

    @fntree.target
    def leaf(x):
        """A docstring."""
        return helper(x) + math.floor(x)

    @fntree.target
    def ping(n):
        return pong(n - 1) if n else leaf(0)

    @fntree.target
    def pong(n):
        return ping(n - 1) if n else 0
''')

PRINT_HASHES = ("import sys; sys.path.insert(0, sys.argv[1]); import mod; "
                "from fntree import identity as i; "
                "print(*(i.code_hash(t).hex() for t in (mod.leaf, mod.ping, mod.pong)))")


def _hashes(directory: Path, source: str, seed: str = "1") -> list[str]:
    (directory / "mod.py").write_text(source)
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run([sys.executable, "-c", PRINT_HASHES, str(directory)],
                         capture_output=True, text=True, env=env, timeout=60, check=True)
    return out.stdout.split()


def test_hash_is_deterministic_across_processes(tmp_path: Path) -> None:
    """The same source gives the same hashes in processes with different string hashing."""
    first = _hashes(tmp_path, MODULE, seed="1")
    assert first == _hashes(tmp_path, MODULE, seed="2")
    assert len(set(first)) == 3 and all(len(h) == 32 for h in first)


def test_hash_ignores_lines_and_docstrings(tmp_path: Path) -> None:
    """Moving code down and editing a docstring changes no hash."""
    before = _hashes(tmp_path, MODULE)
    moved = "\n\n\n" + MODULE.replace('"""A docstring."""', '"""Another docstring."""')
    assert _hashes(tmp_path, moved) == before


def test_hash_follows_code_helpers_and_globals(tmp_path: Path) -> None:
    """A changed constant, helper, global value or referenced target changes the hash."""
    leaf, ping, pong = _hashes(tmp_path, MODULE)
    for edit in (MODULE.replace("math.floor(x)", "math.floor(x + 1)"),
                 MODULE.replace("x * LIMIT", "x - LIMIT"),
                 MODULE.replace("LIMIT = 3", "LIMIT = 4"),
                 MODULE.replace('"d"}', '"e"}')):
        changed = _hashes(tmp_path, edit)
        assert changed[0] != leaf
        assert changed[1] != ping and changed[2] != pong  # they reach leaf through the cycle
    only_pong = _hashes(tmp_path, MODULE.replace("else 0", "else 1"))
    assert only_pong[0] == leaf and only_pong[2] != pong and only_pong[1] != ping


def test_hash_is_per_run_not_per_process() -> None:
    """A global changed between two runs is seen by the next run's hash, not before."""
    namespace: dict[str, object] = {}
    exec(compile("import fntree\nK = 1\n@fntree.target\ndef f():\n    return K\n",
                 "<cell>", "exec"), namespace)
    target = namespace["f"]
    identity.new_run()
    first = identity.code_hash(target)
    namespace["K"] = 2
    assert identity.code_hash(target) == first  # memoized within the run
    identity.new_run()
    assert identity.code_hash(target) != first


SCRIPT = textwrap.dedent('''
    import sys
    import fntree
    from fntree import identity
    from fntree.runtime import codec

    @fntree.target
    def part(i):
        if i == 2 and not __import__("os").path.exists("fixed"):
            raise ValueError("broken")
        return sorted([i, len(sys.argv)])

    if __name__ == "__main__":
        sys.stdout.buffer.write(identity.code_hash(part) + codec.dumps_function(part)[1])
''')


def test_a_script_target_loaded_by_value_has_the_same_hash(tmp_path: Path) -> None:
    """A `__main__` target that travelled by value (as to a worker) hashes as where it was made."""
    (tmp_path / "script.py").write_text(SCRIPT)
    out = subprocess.run([sys.executable, "script.py"], capture_output=True, cwd=tmp_path,
                         timeout=60, check=True).stdout
    here, data = out[:identity.DIGEST_SIZE], out[identity.DIGEST_SIZE:]
    loaded = subprocess.run(
        [sys.executable, "-c", "import pickle, sys; from fntree import identity; "
         "sys.stdout.buffer.write(identity.code_hash(pickle.loads(sys.stdin.buffer.read())))"],
        input=data, capture_output=True, timeout=60, check=True).stdout
    assert loaded == here


def test_a_cycle_hashes_the_same_whichever_end_comes_first(tmp_path: Path) -> None:
    """Two targets that call each other have the same hashes in either order of hashing."""
    (tmp_path / "mod.py").write_text(MODULE)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import mod; "
            "from fntree import identity as i; "
            "print(*(i.code_hash(t).hex() for t in (mod.pong, mod.ping)))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    assert out[::-1] == _hashes(tmp_path, MODULE)[1:]


OPENER = textwrap.dedent('''\
    import sys
    import fntree
    from fntree import identity
    from fntree.runtime import codec

    def note(text):
        with open("record", "a") as f:  # `open` is io.open: a builtin not from `builtins`
            print(text, file=f)

    @fntree.target
    def leaf(i):
        note(str(i))
        return i

    if __name__ == "__main__":
        sys.stdout.buffer.write(identity.code_hash(leaf) + codec.dumps_function(leaf)[1])
''')


def test_builtins_dill_copies_into_globals_do_not_change_the_hash(tmp_path: Path) -> None:
    """A script's target run as `__main__`, sent by value, and imported by name has one hash,
    even when its helper uses builtins that live in other modules (open is io.open)."""
    (tmp_path / "opener.py").write_text(OPENER)
    out = subprocess.run([sys.executable, "opener.py"], capture_output=True, cwd=tmp_path,
                         timeout=60, check=True).stdout
    here, data = out[:identity.DIGEST_SIZE], out[identity.DIGEST_SIZE:]
    loaded = subprocess.run(
        [sys.executable, "-c", "import pickle, sys; from fntree import identity; "
         "sys.stdout.buffer.write(identity.code_hash(pickle.loads(sys.stdin.buffer.read())))"],
        input=data, capture_output=True, timeout=60, check=True).stdout
    imported = subprocess.run(
        [sys.executable, "-c", "import sys; import opener; from fntree import identity; "
         "sys.stdout.buffer.write(identity.code_hash(opener.leaf))"],
        capture_output=True, cwd=tmp_path, timeout=60, check=True).stdout
    assert loaded == here == imported


def test_a_shell_targets_declarations_are_part_of_its_hash() -> None:
    """Changing a shell target's outputs, capture or tool version changes its code hash."""
    import fntree

    def make(**declared: object) -> bytes:
        identity.new_run()

        @fntree.shell(**declared)  # type: ignore[arg-type]
        def tool(src: str, out: str) -> str:
            return fntree.sh("cp {src} {out}", src=src, out=out)

        return identity.code_hash(tool)

    plain = make(outputs=["out"])
    assert make(outputs=["out"]) == plain
    assert len({plain, make(), make(outputs=["out"], version="2"),
                make(outputs=["out"], capture=True)}) == 4
