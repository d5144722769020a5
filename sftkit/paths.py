"""Where sftkit keeps converted models and fetched data (SFTKIT_HOME, default ~/.cache/sftkit)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The cache root; created on first use."""
    root = Path(os.environ.get("SFTKIT_HOME") or Path.home() / ".cache" / "sftkit").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_dir(*parts: str) -> Path:
    """A sub-directory of the cache, created on first use."""
    path = home().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
