"""Making a plug-in visible to importlib.metadata as an install would, without pip."""

from __future__ import annotations

from pathlib import Path


def install_dist_info(site: Path, name: str, version: str, entry_points: str) -> None:
    """A .dist-info in `site` declaring `entry_points`: what pip leaves for an install."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(entry_points)
