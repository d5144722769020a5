"""sftkit: supervised fine-tuning of open LLMs, with evidence.

The Python API (sftkit/api.py) is imported lazily, so `import sftkit` stays fast (no torch, no transformers)
until a function or config class is used:

    from sftkit import SFTConfig, train
    result = train(SFTConfig(data={"train_path": "data.jsonl"}, output_dir="runs/mine"))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "SFTConfig": "sftkit.recipes.sft_config",
    "DPOConfig": "sftkit.recipes.dpo_config",
    "CurateConfig": "sftkit.curate.config",
    "load_config": "sftkit.config",
    "train": "sftkit.api",
    "dpo": "sftkit.api",
    "evaluate": "sftkit.api",
    "compare": "sftkit.api",
    "safety": "sftkit.api",
    "redteam": "sftkit.api",
    "curate": "sftkit.api",
    "export": "sftkit.api",
    "sweep": "sftkit.sweep",  # the package, callable as the verb (sftkit/sweep/__init__.py)
    "SweepConfig": "sftkit.sweep.config",
    "report": "sftkit.api",
    "TrainResult": "sftkit.results",
    "DPOResult": "sftkit.results",
    "EvalResult": "sftkit.results",
    "CompareResult": "sftkit.results",
    "SafetyResult": "sftkit.results",
    "RedteamResult": "sftkit.results",
    "CurateResult": "sftkit.results",
    "ExportResult": "sftkit.results",
    "SweepResult": "sftkit.results",
    "ReportResult": "sftkit.results",
    "UserError": "sftkit.errors",
    "ConfigError": "sftkit.errors",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports on first use
    from sftkit.api import compare, curate, dpo, evaluate, export, redteam, report, safety, sweep, train
    from sftkit.config import load_config
    from sftkit.curate.config import CurateConfig
    from sftkit.errors import ConfigError, UserError
    from sftkit.recipes.dpo_config import DPOConfig
    from sftkit.recipes.sft_config import SFTConfig
    from sftkit.sweep.config import SweepConfig
    from sftkit.results import (CompareResult, CurateResult, DPOResult, EvalResult, ExportResult, RedteamResult,
                                ReportResult, SafetyResult, SweepResult, TrainResult)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sftkit' has no attribute {name!r}")
    value = importlib.import_module(module)
    if module != f"{__name__}.{name}":  # a package exported under its own name is the value itself
        value = getattr(value, name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
