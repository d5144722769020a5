"""Red-teaming: attack families over harmful seeds, success rates with intervals, before and after fine-tuning
(`run_redteam`; `sftkit redteam`).

Exports are imported on first use, so importing a light submodule (settings, seeds, attacks) loads no model code.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"RedteamSettings": "sftkit.redteam.settings", "print_redteam": "sftkit.redteam.report",
            "run_redteam": "sftkit.redteam.evaluate", "redteam_after_training": "sftkit.redteam.evaluate"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sftkit.redteam' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
