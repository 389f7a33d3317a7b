"""A real headless Chromium for the tests of fntree's HTML: screenshots and the DOM after the
page's script ran, and a small PNG reader to look at the pixels.

Tests that need it skip when Chromium is not installed, unless FNTREE_REQUIRE_CHROMIUM=1
(as in CI, where ci/tools-up.sh installs it): then its absence fails them.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0")


def chromium() -> str:
    """The Chromium binary, or skip (fail when FNTREE_REQUIRE_CHROMIUM=1)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("FNTREE_REQUIRE_CHROMIUM") == "1":
            pytest.fail("FNTREE_REQUIRE_CHROMIUM=1 but chromium is not installed: run "
                        "ci/tools-up.sh")
        pytest.skip("chromium is not installed (ci/tools-up.sh installs it)")
    return found


def _run(url: str, *extra: str,
         size: tuple[int, int] = (1300, 900)) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="fntree-chromium-") as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}",
             f"--window-size={size[0]},{size[1]}", *extra, url],
            capture_output=True, text=True, timeout=120, check=False)


def js_errors(stderr: str) -> list[str]:
    """The console lines of Chromium's log that report a JavaScript error."""
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)]


def render(url: str, png: Path, size: tuple[int, int] = (1300, 900)) -> tuple[str, list[str]]:
    """Load `url` once: its screenshot saved as `png`, and (the DOM after its scripts ran,
    the JavaScript errors logged). One browser start each: they are slow on a busy machine."""
    done = _run(url, f"--screenshot={png}", "--dump-dom", size=size)
    assert done.returncode == 0 and png.exists(), done.stderr[-2000:]
    return done.stdout, js_errors(done.stderr)


class Image:
    """An RGB(A) 8-bit PNG, as Chromium writes its screenshots: pixels by (x, y)."""

    def __init__(self, path: Path) -> None:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        pos, idat, header = 8, b"", b""
        while pos < len(data):
            length, kind = struct.unpack(">I4s", data[pos:pos + 8])
            chunk = data[pos + 8:pos + 8 + length]
            if kind == b"IHDR":
                header = chunk
            elif kind == b"IDAT":
                idat += chunk
            pos += 12 + length
        self.width, self.height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
        assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
        self.channels = 4 if colour == 6 else 3
        self.rows = self._unfilter(zlib.decompress(idat))

    def _unfilter(self, raw: bytes) -> list[bytearray]:
        stride, n = self.width * self.channels, self.channels
        rows: list[bytearray] = []
        previous = bytearray(stride)
        for y in range(self.height):
            kind = raw[y * (stride + 1)]
            row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
            for i in range(stride):
                left = row[i - n] if i >= n else 0
                up, corner = previous[i], previous[i - n] if i >= n else 0
                if kind == 1:
                    row[i] = (row[i] + left) & 255
                elif kind == 2:
                    row[i] = (row[i] + up) & 255
                elif kind == 3:
                    row[i] = (row[i] + (left + up) // 2) & 255
                elif kind == 4:
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    row[i] = (row[i] + (left if pa <= pb and pa <= pc else
                                        up if pb <= pc else corner)) & 255
            rows.append(row)
            previous = row
        return rows

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        i = x * self.channels
        r, g, b = self.rows[y][i:i + 3]
        return r, g, b

    def count(self, colour: str, box: tuple[int, int, int, int] | None = None) -> int:
        """How many pixels in `box` (x0, y0, x1, y1) are `colour` ("#rrggbb")."""
        want = tuple(int(colour[k:k + 2], 16) for k in (1, 3, 5))
        x0, y0, x1, y1 = box or (0, 0, self.width, self.height)
        return sum(self.pixel(x, y) == want for y in range(y0, y1) for x in range(x0, x1))

    def columns(self, colour: str, y: int) -> list[int]:
        """The x of each pixel of row `y` that is `colour`."""
        want = tuple(int(colour[k:k + 2], 16) for k in (1, 3, 5))
        return [x for x in range(self.width) if self.pixel(x, y) == want]

    def ink(self) -> float:
        """The share of pixels that are not white: a blank page has none."""
        white = (255, 255, 255)
        total = self.width * self.height
        return sum(self.pixel(x, y) != white for y in range(0, self.height, 2)
                   for x in range(0, self.width, 2)) * 4 / total
