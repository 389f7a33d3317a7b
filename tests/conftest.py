"""Shared fixtures: a fresh job store path per test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A job store path that does not exist yet."""
    return tmp_path / "jobstore"
