"""A system Chromium, headless, for screenshots of a report (`sftkit report RUN --screenshot PNG`) and the
browser tests. No browser is downloaded: Debian's `chromium` (or `chromium-headless-shell`) is used, found on
PATH or at SFTKIT_CHROMIUM."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sftkit.errors import UserError

BROWSER_NAMES = ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome")
INSTALL_HINT = "install Debian's chromium (`apt-get install chromium`) or set SFTKIT_CHROMIUM to a Chromium binary"
# Headless, no sandbox (it needs user namespaces, which containers and root lack), and none of the
# background connections a fresh profile makes on start (updates, sync, field trials).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
         "--hide-scrollbars", "--mute-audio")


def find_browser() -> str | None:
    """The Chromium binary to use, or None."""
    env = os.environ.get("SFTKIT_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    return next((found for found in map(shutil.which, BROWSER_NAMES) if found), None)


def screenshot(html_path: str | Path, png_path: str | Path, width: int = 1100, height: int = 2400,
               timeout_seconds: float = 90) -> Path:
    """Render `html_path` in headless Chromium and write a `width` x `height` PNG of its top."""
    browser = find_browser()
    if browser is None:
        raise UserError(f"--screenshot needs a Chromium browser: {INSTALL_HINT}")
    html_path, png_path = Path(html_path).resolve(), Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sftkit-chromium-") as profile:
        result = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                                 f"--screenshot={png_path}", html_path.as_uri()],
                                check=False, capture_output=True, text=True, timeout=timeout_seconds)
    if result.returncode != 0 or not png_path.is_file():
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"chromium could not take the screenshot (exit {result.returncode}): {tail[0]}")
    return png_path
