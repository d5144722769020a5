"""Safety: refusal and over-refusal rates, HHH accuracy, before/after deltas (`run_safety`), guardrails for
generation (`sftkit.safety.guardrails`) and the hazard taxonomy (`sftkit.safety.hazards`).

Exports are imported on first use, so importing a light submodule (settings, hazards) loads no model code.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"SafetySettings": "sftkit.safety.settings", "print_safety": "sftkit.safety.report",
            "run_safety": "sftkit.safety.evaluate", "safety_after_training": "sftkit.safety.evaluate"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sftkit.safety' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
