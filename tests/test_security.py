"""Nobody else gets in: another local user cannot read or redirect a run's temp files, cannot
plant code in a job store, a umask cannot widen what fntree makes, and a copied store is its
own (`fntree/runtime/durable.py`, `fntree/runtime/access.py`, `fntree/runtime/paths.py`).

The attacks run as real second users, made here with `useradd` (so those tests need root);
`runuser` runs commands as them, with this checkout and its libraries on PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import pickle
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import wait_for
from security_workflows import SECRET

TESTS = Path(__file__).parent
REPO = TESTS.parent
SCRIPT = "security_workflows.py"


class User:
    """A local user made for these tests, and how to run a command as them."""

    def __init__(self, name: str, home: Path, python: str, pythonpath: str) -> None:
        self.name = name
        self.home = home
        self.uid = pwd.getpwnam(name).pw_uid
        self.python = python
        self.pythonpath = pythonpath

    def argv(self, *command: str, umask: str | None = None) -> list[str]:
        env = ["env", "-i", f"HOME={self.home}", "PATH=/usr/bin:/bin",
               f"PYTHONPATH={self.pythonpath}", "LANG=C.UTF-8"]
        shell = [] if umask is None else ["sh", "-c", f'umask {umask}; exec "$@"', "sh"]
        return ["runuser", "-u", self.name, "--", *env, *shell, *command]

    def run(self, *command: str, cwd: Path,
            umask: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*command, umask=umask), cwd=cwd, capture_output=True,
                              text=True, timeout=300)


def _python_for_others(shared: Path) -> tuple[str, str]:
    """An interpreter other users may run, and a PYTHONPATH with fntree and its libraries."""
    purelib = sysconfig.get_paths()["purelib"]
    candidates = [os.path.realpath(sys.executable),
                  f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"]
    python = next((c for c in candidates if _everyone_can_run(c)), None)
    if python is None:
        pytest.skip(f"no Python {sys.version_info[0]}.{sys.version_info[1]} that other users "
                    "can run (this one is under a directory they cannot enter)")
    if _everyone_can_enter(REPO) and _everyone_can_enter(Path(purelib)):
        return python, f"{REPO}:{TESTS}:{purelib}"
    copy = shared / "lib"  # the checkout is out of their reach: copy what runs need
    shutil.copytree(REPO / "fntree", copy / "fntree")
    shutil.copy(TESTS / SCRIPT, copy / SCRIPT)
    shutil.copy(TESTS / "processes.py", copy / "processes.py")
    for name in ("attr", "attrs", "rich", "dill", "markdown_it", "mdurl", "pygments"):
        if (Path(purelib) / name).is_dir():
            shutil.copytree(Path(purelib) / name, copy / name)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return python, str(copy)


def _everyone_can_run(path: str) -> bool:
    return os.path.exists(path) and all(
        os.stat(p).st_mode & 0o001 for p in [path, *map(str, Path(path).parents)])


def _everyone_can_enter(path: Path) -> bool:
    return all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents])


def _script(user: User, shared: Path) -> str:
    lib = Path(user.pythonpath.split(":")[0])
    return str(lib / SCRIPT) if (lib / SCRIPT).exists() else str(TESTS / SCRIPT)


@pytest.fixture(scope="module")
def users() -> Iterator[tuple[User, User, Path]]:
    """(victim, attacker, a directory both can read): two fresh local users."""
    if os.geteuid() != 0:
        pytest.skip("making second local users (useradd) needs root")
    if not shutil.which("useradd") or not shutil.which("runuser"):
        pytest.skip("useradd and runuser are needed to act as a second local user")
    shared = Path(tempfile.mkdtemp(prefix="fntree-security-"))
    shared.chmod(0o755)
    python, pythonpath = _python_for_others(shared)
    tag = uuid.uuid4().hex[:8]
    made: list[User] = []
    try:
        for role in ("v", "a"):
            name, home = f"ft{role}{tag}", shared / f"home-{role}"
            subprocess.run(["useradd", "--create-home", "--home-dir", str(home), "--shell",
                            "/bin/sh", name], check=True, capture_output=True)
            home.chmod(0o700)
            made.append(User(name, home, python, pythonpath))
        probe = made[0].run(python, "-c", "import fntree, attrs, rich, dill", cwd=shared)
        if probe.returncode:
            pytest.skip(f"another user cannot import fntree here: {probe.stderr.strip()}")
        yield made[0], made[1], shared
    finally:
        for user in made:
            base = Path("/tmp") / f"fntree-{user.uid}"
            if base.is_symlink():
                base.unlink()
            shutil.rmtree(base, ignore_errors=True)
            subprocess.run(["userdel", "--remove", user.name], capture_output=True)
        shutil.rmtree(shared, ignore_errors=True)


def _victim_dir(victim: User, shared: Path, name: str) -> Path:
    path = shared / name
    path.mkdir(mode=0o700)
    os.chown(path, victim.uid, -1)
    return path


def _listing(path: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p), p.lstat().st_mtime_ns, p.lstat().st_size) for p in path.rglob("*"))


@pytest.mark.parametrize("plant", ["open directory", "symlink to the victim's home"])
def test_temp_base_planted_by_another_user_is_refused(users: tuple[User, User, Path],
                                                      plant: str) -> None:
    """An attacker's `/tmp/fntree-<uid>` (0777, or a link to the victim's home) is refused with
    its path named; nothing of the victim's is written there or read from there."""
    victim, attacker, shared = users
    base = Path("/tmp") / f"fntree-{victim.uid}"
    if plant == "open directory":
        made = attacker.run("sh", "-c", f"mkdir {base} && chmod 777 {base}", cwd=shared)
    else:
        made = attacker.run("ln", "-s", str(victim.home), str(base), cwd=shared)
    assert made.returncode == 0, made.stderr
    work = _victim_dir(victim, shared, f"runs-{plant[:4]}")
    (work / "go").touch()
    os.chown(work / "go", victim.uid, -1)
    home_before = _listing(victim.home)
    done = victim.run(victim.python, _script(victim, shared), str(work), str(work / "store"),
                      cwd=shared)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "UnsafePathError" in done.stdout and str(base) in done.stdout
    assert ("belongs to another user" if plant == "open directory"
            else "symbolic link") in done.stdout
    assert _listing(victim.home) == home_before
    if plant == "open directory":
        assert list(base.iterdir()) == []
    base.unlink() if base.is_symlink() else base.rmdir()


def _walk_modes(root: Path) -> dict[str, int]:
    modes = {str(root): stat.S_IMODE(root.lstat().st_mode)}
    for path in root.rglob("*"):
        modes[str(path)] = stat.S_IMODE(path.lstat().st_mode)
    return modes


def _not_private(modes: dict[str, int]) -> dict[str, str]:
    return {path: f"{mode:o}" for path, mode in modes.items() if mode & 0o077}


def test_everything_made_under_umask_000_is_owner_only(users: tuple[User, User, Path]) -> None:
    """Under umask 000 the store, the temp base and everything in them stay owner-only, during
    the run and after it."""
    victim, _, shared = users
    work = _victim_dir(victim, shared, "runs-umask")
    store = work / "store"
    run = subprocess.Popen(victim.argv(victim.python, _script(victim, shared), str(work),
                                       str(store), umask="000"),
                           cwd=shared, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: (work / "started").exists() or run.poll() is not None, timeout=120)
        assert run.poll() is None, run.communicate()[0]
        store_id = json.loads((store / "fntree.json").read_text())["store_id"]
        base = Path("/tmp") / f"fntree-{victim.uid}"
        local = Path((work / "started").read_text())
        assert local.is_relative_to(base / store_id)
        during = {**_walk_modes(store), **_walk_modes(base)}
        assert str(local) in during and any("tmp/g" in p for p in during)
        assert any(p.endswith(".log") and "/logs/" not in p for p in during)
        assert _not_private(during) == {}
        (work / "go").touch()
        output, _ = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0 and SECRET in output, output
    after = _walk_modes(store)
    assert any("/logs/" in p for p in after) and any("events." in p for p in after)
    assert _not_private(after) == {}
    assert _not_private(_walk_modes(base)) == {}


class _Payload:
    """Unpickling this runs a command: what an attacker would plant."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def test_pickle_planted_in_an_inner_directory_is_never_loaded(
        users: tuple[User, User, Path]) -> None:
    """With the root fixed by `chmod go-w DIR` but `journal/` left 0777, another user's planted
    snapshot is refused by `fntree status`, which names the path; `chmod -R go-w` then still
    refuses the planted file as another user's. The planted code never runs."""
    victim, attacker, shared = users
    work = _victim_dir(victim, shared, "runs-plant")
    (work / "go").touch()
    done = victim.run(victim.python, _script(victim, shared), str(work), str(work / "store"),
                      cwd=shared)
    assert done.returncode == 0, done.stdout + done.stderr
    store = work / "store"
    for path in [store, *store.rglob("*")]:  # as an older fntree left it under umask 000
        if path.is_dir():
            path.chmod(0o777)
    store.chmod(0o755)  # `chmod go-w DIR`, the advice that was not recursive
    work.chmod(0o755)
    marker = shared / "planted-code-ran"
    planted = store / "journal" / "snapshot.999"
    plant = attacker.run(attacker.python, "-c",
                         "import sys; open(sys.argv[1], 'wb').write(bytes.fromhex(sys.argv[2]))",
                         str(planted), pickle.dumps(_Payload(marker)).hex(), cwd=shared)
    assert plant.returncode == 0, plant.stderr
    status = victim.run(victim.python, "-m", "fntree", "status", str(store), cwd=shared)
    assert status.returncode == 2, status.stdout + status.stderr
    assert "writable by others" in status.stderr and f"chmod -R go-w {store}" in status.stderr
    assert str(store / "journal") in status.stderr.replace("\n", "")
    assert not marker.exists()
    victim.run("chmod", "-R", "go-w", str(store), cwd=shared)  # all but the planted file
    assert stat.S_IMODE((store / "journal").stat().st_mode) == 0o755
    status = victim.run(victim.python, "-m", "fntree", "status", str(store), cwd=shared)
    assert status.returncode == 2
    assert "belongs to another user" in status.stderr
    assert str(planted) in status.stderr.replace("\n", "")
    assert not marker.exists()


def test_clean_on_a_copy_leaves_the_original_running_job_alone(tmp_path: Path) -> None:
    """`cp -a` of a store with a running job, then `fntree clean` of the copy: the copy gets its
    own id, the original's job keeps its temp file and finishes with the right value."""
    store, copy = tmp_path / "store", tmp_path / "copy"
    run = subprocess.Popen([sys.executable, str(TESTS / SCRIPT), str(tmp_path), str(store)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: (tmp_path / "started").exists() or run.poll() is not None, timeout=120)
        assert run.poll() is None, run.communicate()[0]
        local = Path((tmp_path / "started").read_text())
        original_id = json.loads((store / "fntree.json").read_text())["store_id"]
        subprocess.run(["cp", "-a", str(store), str(copy)], check=True)
        clean = subprocess.run([sys.executable, "-m", "fntree", "clean", str(copy)],
                               capture_output=True, text=True, timeout=120)
        assert clean.returncode == 0, clean.stderr
        assert not copy.exists()
        assert local.read_text() == SECRET
        assert json.loads((store / "fntree.json").read_text())["store_id"] == original_id
        (tmp_path / "go").touch()
        output, _ = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0 and SECRET in output, output


def test_a_copy_is_given_its_own_id_once(tmp_path: Path) -> None:
    """Opening a copy records a new store id and where the copy lives; opening it again keeps
    that id, and the original keeps its own."""
    from workflows import leaf

    import fntree
    from fntree.runtime.store import JobStore

    store, copy = tmp_path / "store", tmp_path / "copy"
    fntree.run(leaf(1), jobstore=store)
    subprocess.run(["cp", "-a", str(store), str(copy)], check=True)
    first = JobStore.open(copy).store_id
    assert first != JobStore.open(store).store_id
    assert JobStore.open(copy).store_id == first
    recorded = json.loads((copy / "fntree.json").read_text())
    assert recorded["store_id"] == first and recorded["root"]["ino"] == copy.stat().st_ino
    assert fntree.restart(copy) == fntree.restart(store)


def test_clean_on_a_symlink_names_the_store_and_removes_nothing(tmp_path: Path) -> None:
    """`fntree clean LINK` refuses, naming the store it points to; the store is kept."""
    from workflows import leaf

    import fntree

    store, link = tmp_path / "store", tmp_path / "link"
    fntree.run(leaf(1), jobstore=store)
    link.symlink_to(store)
    clean = subprocess.run([sys.executable, "-m", "fntree", "clean", str(link)],
                           capture_output=True, text=True, timeout=120)
    assert clean.returncode == 2
    assert "symbolic link" in clean.stderr and f"fntree clean {store}" in clean.stderr
    assert (store / "fntree.json").exists() and link.is_symlink()


def test_a_store_from_before_the_identity_record_gets_one_and_keeps_its_id(
        tmp_path: Path) -> None:
    """A store whose fntree.json has no "root" record is given one at its next open, with the
    same store id (it cannot be told from a copy, and is taken as the original)."""
    from workflows import leaf

    import fntree
    from fntree.runtime.access import meta_bytes
    from fntree.runtime.store import JobStore

    store = tmp_path / "store"
    fntree.run(leaf(1), jobstore=store)
    meta = json.loads((store / "fntree.json").read_text())
    del meta["root"]
    (store / "fntree.json").write_bytes(meta_bytes(meta))
    assert JobStore.open(store).store_id == meta["store_id"]
    recorded = json.loads((store / "fntree.json").read_text())
    assert recorded["store_id"] == meta["store_id"]
    assert recorded["root"]["ino"] == store.stat().st_ino


def test_processes_opening_a_copy_at_once_agree_on_its_new_id(tmp_path: Path) -> None:
    """Several processes that open a fresh copy together all see the one id it was given."""
    from workflows import leaf

    import fntree

    store, copy = tmp_path / "store", tmp_path / "copy"
    fntree.run(leaf(1), jobstore=store)
    subprocess.run(["cp", "-a", str(store), str(copy)], check=True)
    code = ("import sys; from fntree.runtime.store import JobStore; "
            "print(JobStore.open(sys.argv[1]).store_id)")
    openers = [subprocess.Popen([sys.executable, "-c", code, str(copy)], stdout=subprocess.PIPE,
                                text=True) for _ in range(4)]
    ids = {opener.communicate(timeout=120)[0].strip() for opener in openers}
    recorded = json.loads((copy / "fntree.json").read_text())["store_id"]
    assert ids == {recorded}
    assert recorded != json.loads((store / "fntree.json").read_text())["store_id"]
