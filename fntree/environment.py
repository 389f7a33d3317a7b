"""The run's environment and its changes at restarts.

A run records the environment it started with (`config["env"]`). A restart may
change it from then on (`fntree restart DIR --env NAME=VALUE --env-unset NAME`,
or `fntree.restart(DIR, env=..., env_unset=...)`): the change is appended to
`config["env_changes"]` as `(time, {name: value, or None to unset})` and the
config is replaced atomically, under the leader's lock, before the leader
starts, so a crash leaves either the old config or the new one. Every later
reader (the restart's workers, `fntree debug-job`, `fntree status`) sees the
recorded environment with every change applied in order (`current`).
"""

from __future__ import annotations

import time
from typing import Any

from fntree.errors import FntreeError
from fntree.runtime.store import JobStore


def current(config: dict[str, Any]) -> dict[str, str]:
    """The run's environment now: the recorded one with each change applied in order."""
    env = dict(config.get("env", {}))
    for _, change in config.get("env_changes", ()):
        for name, value in change.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
    return env


def parse_assignments(items: list[str]) -> dict[str, str]:
    """`NAME=VALUE` strings (from --env) as a dict; FntreeError for one without a name."""
    found = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise FntreeError(f"--env {item!r} is not NAME=VALUE; write --env {item}=VALUE, "
                              f"or --env-unset {item} to remove it")
        found[name] = value
    return found


def record_change(store: JobStore, config: dict[str, Any], env: dict[str, str],
                  unset: list[str]) -> dict[str, Any]:
    """Record that the run's environment changes now; the new config."""
    change: dict[str, str | None] = {}
    for name, value in env.items():
        _check_name(name)
        if not isinstance(value, str):
            raise FntreeError(f"the value of environment variable {name} must be a string, "
                              f"not {type(value).__name__}")
        change[name] = value
    for name in unset:
        _check_name(name)
        if name in change:
            raise FntreeError(f"environment variable {name} is both set and unset; give it once")
        change[name] = None
    config = {**config,
              "env_changes": [*config.get("env_changes", ()), (time.time(), change)]}
    store.lock()
    try:
        store.write_config(config)
    finally:
        store.unlock()
    return config


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name or "=" in name or "\0" in name:
        raise FntreeError(f"{name!r} is not an environment variable name; a name is "
                          "non-empty and has no '=' in it")


def describe_changes(config: dict[str, Any]) -> list[str]:
    """One line per recorded change: when, and what was set or unset."""
    lines = []
    for when, change in config.get("env_changes", ()):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
        parts = [f"{name}={value}" if value is not None else f"unset {name}"
                 for name, value in sorted(change.items())]
        lines.append(f"{stamp}: {', '.join(parts)}")
    return lines
