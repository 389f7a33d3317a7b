"""Where each run option's value comes from: built-in default, config file, profile,
environment, command line.

A new run takes each option (the names of `fntree.api.DEFAULTS`) from the first of:
1. a keyword argument of `fntree.run`, or the command line (`--max-jobs 8`);
2. the environment: `FNTREE_<NAME>` (`FNTREE_MAX_JOBS=8`; the fault-injection and
   cache variables keep their names, `FNTREE_FAULT_KILL`, `FNTREE_CACHE`, ...);
3. the chosen profile (`--profile NAME`, else `$FNTREE_PROFILE`), a table
   `profiles.NAME` of the config file;
4. the config file's own keys;
5. the built-in default.

The config file is `[tool.fntree]` in the nearest `pyproject.toml` and the whole of
the nearest `fntree.toml`, each searched for upward from the current directory; when
both are found, `fntree.toml`'s keys win. Keys are the command-line options' names
without their dashes (`batch-system`, `max-jobs`, `slurm-partition`, `sge-queue`,
`retry-count`, `cache`, ...) plus `jobstore-root`: where runs without a job store path
make their temporary one, and `default-time` / `default-memory`: what jobs of targets
that declare none are given (fntree/batch/defaults.py). Relative paths are relative
to the file's directory. An unknown key, a value of the wrong type, or an unknown
profile is a `ConfigError` naming the file and the key. Nothing is cached: each call
reads the files afresh.

A restart keeps the options its run recorded instead of 3 to 5 (a profile named by
`--profile` applies over them), and only the environment variables it always
honoured (cache, faults) apply over those.
`fntree config` shows each value with its source (`settings`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from fntree.errors import FntreeError
from fntree.private import make_private_dir
from fntree.resources import TIME_FORMS, parse_memory, parse_time

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

PROFILE_ENV = "FNTREE_PROFILE"
# The variables that predate FNTREE_<NAME>, and the only ones a restart honours.
SPECIAL_ENV = {"cache": "FNTREE_CACHE", "fault_kill": "FNTREE_FAULT_KILL",
               "fault_raise": "FNTREE_FAULT_RAISE", "fault_seed": "FNTREE_FAULT_SEED"}
FILE_NAMES = ("pyproject.toml", "fntree.toml")


class ConfigError(FntreeError, ValueError):
    """A config file, a profile or an FNTREE_ variable holds something fntree cannot use."""


class Setting(NamedTuple):
    """One option's value and where it came from, as `fntree config` shows it."""

    value: Any
    source: str


class Layer(NamedTuple):
    """The options one file or one profile sets, and how `fntree config` names it."""

    label: str
    values: dict[str, Any]


def _text(value: Any) -> Any:
    if not isinstance(value, str):
        raise TypeError("a string")
    return value


def _whole(value: Any) -> Any:
    try:
        value = int(value) if isinstance(value, str) else value
    except ValueError:
        raise TypeError("a whole number") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("a whole number")
    return value


def _number(value: Any) -> Any:
    try:
        value = float(value) if isinstance(value, str) else value
    except ValueError:
        raise TypeError("a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("a number")
    return value


def _memory(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError('a number of bytes or a string such as "8G"')
    return value


def _time(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"a time: {TIME_FORMS}")
    return parse_time(value, what="default-time")


def _bytes(value: Any) -> Any:
    return parse_memory(_memory(value), what="default-memory")


# Each option's check of a value from a file (a TOML value) or the environment (text).
KINDS: dict[str, Callable[[Any], Any]] = {
    "batch_system": _text, "max_cpus": _number, "max_memory": _memory, "retry_count": _whole,
    "log_level": _text, "max_jobs": _whole, "slurm_partition": _text, "slurm_args": _text,
    "sge_queue": _text, "sge_pe": _text, "sge_args": _text, "sge_resources": _text,
    "max_log_mb": _number, "max_job_duration": _number, "cache": _text,
    "jobstore_root": _text, "fault_kill": _number, "fault_raise": _number,
    "fault_seed": _whole, "default_time": _time, "default_memory": _bytes,
}
PATHS = ("cache", "jobstore_root")  # relative to the config file's directory
FILE_KEYS = {name.replace("_", "-"): name for name in KINDS if not name.startswith("fault_")}


def temporary_store(root: str | None) -> Path:
    """The path of a new temporary job store, in a new directory of its own under `root`
    (made if missing), or of the system's temporary directory."""
    if root:
        try:
            if not os.path.lexists(root):  # with its missing parents, owner-only
                make_private_dir(Path(root))
            if not os.path.isdir(root):
                raise NotADirectoryError(f"{root} is not a directory")
        except OSError as exc:
            raise ConfigError(f"cannot make the jobstore-root {root} ({exc}); set "
                              "jobstore-root to a directory you may write to") from None
    return Path(tempfile.mkdtemp(prefix="fntree-", dir=root or None)) / "jobstore"


def settings(defaults: dict[str, Any], explicit: dict[str, Any], options: Any,
             recorded: dict[str, Any] | None = None,
             cwd: Path | None = None) -> dict[str, Setting]:
    """Every option's value and source; `explicit` holds only the keywords given.

    `recorded` is a restart's recorded options (None for a new run); `options` an
    argparse namespace (or None) whose None attributes were not given.
    """
    found = {name: Setting(value, "built-in default") for name, value in defaults.items()}
    if recorded is None:
        for layer in layers(profile_of(options), cwd or _here()):
            found.update({k: Setting(v, layer.label) for k, v in layer.values.items()})
        variables = {name: SPECIAL_ENV.get(name, "FNTREE_" + name.upper()) for name in KINDS}
    else:
        found.update({k: Setting(v, "recorded in the job store") for k, v in recorded.items()})
        given = getattr(options, "profile", None) if options is not None else None
        chosen = layers((given, "--profile"), cwd or _here()) if given else []
        for layer in (x for x in chosen if x.label.startswith("profile ")):
            found.update({k: Setting(v, layer.label) for k, v in layer.values.items()})
        variables = SPECIAL_ENV
    for name, variable in variables.items():
        if os.environ.get(variable):
            found[name] = Setting(_check(name, os.environ[variable], f"${variable}"),
                                  f"environment ${variable}")
    for name in defaults:
        given = getattr(options, name, None) if options is not None else None
        if name in explicit:
            found[name] = Setting(explicit[name], "keyword argument")
        elif given is not None:
            found[name] = Setting(given, f"command line --{name.replace('_', '-')}")
    return found


def blame(error: FntreeError, found: dict[str, Setting],
          check: Callable[[str, Any], None]) -> FntreeError:
    """`error` of the resolved options, naming the source of the value that caused it
    when that value came from a file, a profile or the environment."""
    for name, setting in found.items():
        if setting.source.startswith(("built-in", "keyword", "command line", "recorded")):
            continue
        try:
            check(name, setting.value)
        except FntreeError as exc:
            return type(exc)(f"{exc} (set by {setting.source}); fix it there")
    return error


def profile_of(options: Any) -> tuple[str, str] | None:
    """(profile name, what chose it), or None."""
    given = getattr(options, "profile", None) if options is not None else None
    if given:
        return given, "--profile"
    if os.environ.get(PROFILE_ENV):
        return os.environ[PROFILE_ENV], f"${PROFILE_ENV}"
    return None


def _here() -> Path | None:
    """The current directory, or None once it was deleted (a run then refuses to start)."""
    try:
        return Path.cwd()
    except FileNotFoundError:
        return None


def config_files(cwd: Path | None) -> list[tuple[Path, dict[str, Any]]]:
    """(path, fntree table) of the nearest pyproject.toml and fntree.toml, in that order."""
    if cwd is None:
        return []
    found = []
    for name in FILE_NAMES:
        # lexists: a directory or a dangling link of that name is an error, never passed over
        path = next((d / name for d in (cwd, *cwd.parents) if os.path.lexists(d / name)), None)
        if path is None:
            continue
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the config file {path} ({exc}); fix it, or "
                              "run from another directory") from None
        tool = data.get("tool", {}) if name == "pyproject.toml" else {}
        if not isinstance(tool, dict):
            raise ConfigError(f"{path}: tool = {tool!r} is not a table; write [tool.fntree] "
                              "tables, or remove it")
        table = tool.get("fntree") if name == "pyproject.toml" else data
        if table is not None:
            found.append((path, table))
    return found


def layers(profile: tuple[str, str] | None, cwd: Path | None) -> list[Layer]:
    """The files' layers, then the chosen profile's, lowest precedence first."""
    files = config_files(cwd)
    found = [Layer(_where(path), _values(path, table, _where(path))) for path, table in files]
    if profile is None:
        return found
    name, chosen_by = profile
    tables = [(path, table.get("profiles", {})) for path, table in files]
    matches = [(path, t[name]) for path, t in tables if isinstance(t, dict) and name in t]
    if not matches:
        known = sorted({p for _, t in tables if isinstance(t, dict) for p in t})
        where = ", ".join(str(p) for p, _ in files) or "no config file was found upward " \
            f"from {cwd or 'here'}"
        raise ConfigError(f"there is no profile {name!r} (chosen by {chosen_by}); known "
                          f"profiles: {', '.join(known) or 'none'} (in {where}); add a "
                          f"[{_prefix(files[0][0]) if files else ''}profiles.{name}] table, "
                          "or choose another")
    for path, table in matches:
        label = f"profile {name} in {_where(path)}"
        if not isinstance(table, dict):
            raise ConfigError(f"{label} is not a table; write [{_prefix(path)}profiles.{name}]")
        found.append(Layer(label, _values(path, table, f"{_where(path)} [profiles.{name}]")))
    return found


def _where(path: Path) -> str:
    return f"{path} [tool.fntree]" if path.name == "pyproject.toml" else str(path)


def _prefix(path: Path) -> str:
    return "tool.fntree." if path.name == "pyproject.toml" else ""


def _values(path: Path, table: Any, label: str) -> dict[str, Any]:
    """The options a table sets, each checked; the profiles table is skipped."""
    if not isinstance(table, dict):
        raise ConfigError(f"{label} is not a table; write it as a [tool.fntree] table with "
                          "one key per option")
    values = {}
    for key, value in table.items():
        if key == "profiles":
            continue
        name = FILE_KEYS.get(key)
        if name is None:
            hint = (f"write it {key.replace('_', '-')}" if key.replace("_", "-") in FILE_KEYS
                    else f"known keys: {', '.join(sorted(FILE_KEYS))}, profiles")
            raise ConfigError(f"{label}: unknown key {key!r}; {hint}")
        checked = _check(name, value, f"{label}: {key}")
        if name in PATHS:
            checked = str(path.parent / os.path.expanduser(checked))
        values[name] = checked
    return values


def _check(name: str, value: Any, where: str) -> Any:
    try:
        return KINDS[name](value)
    except TypeError as exc:
        raise ConfigError(f"{where} = {value!r} must be {exc}; fix it there") from None
    except ValueError as exc:  # a ResourceError: its text says what the value should be
        raise ConfigError(f"{where} = {value!r}: {exc}; fix it there") from None
