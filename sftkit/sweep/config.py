"""`sftkit sweep` configuration (SWEEP.yaml): a base `sftkit train` config, a search space, a budget, an
objective and the successive-halving rungs. `load_sweep` reports every problem at once, the trial configs'
included, before any model or data is loaded.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from sftkit.config import OUTPUT_DIR, Section, apply_overrides, format_errors, load_config, raw_config, read_yaml
from sftkit.errors import ConfigError
from sftkit.eval.metrics import GENERATION_METRICS
from sftkit.recipes.sft_config import SFTConfig
from sftkit.sweep.space import SearchSpace, parse_space

# Settings the sweep itself controls in every trial: the fixed splits, the budget, where the trial runs.
CONTROLLED = ("data.train_path", "data.val_path", "data.test_path", "data.val_fraction", "data.test_fraction",
              "data.max_examples", "data.format", "train.max_steps", "train.num_epochs", "output_dir")


class BudgetSection(Section):
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps of a trial that runs to the end; the "
                                  "rungs are fractions of it. Unset (and no num_tokens): the base config's length.")
    num_tokens: int | None = Field(None, ge=1, description="Trained tokens (the assistant tokens the loss counts) "
                                   "of a trial that runs to the end, turned into steps per trial with the "
                                   "training split's mean trained tokens per example.")
    wall_seconds: float | None = Field(None, gt=0, description="Training time for the whole search: no rung of a "
                                       "trial starts once it is spent, and the best trial of the highest rung "
                                       "reached wins (it and the base then train to the end).")

    @model_validator(mode="after")
    def _one_length(self):
        if self.max_steps is not None and self.num_tokens is not None:
            raise ValueError("budget: set max_steps or num_tokens, not both")
        return self


class SweepConfig(Section):
    """A whole `sftkit sweep`."""

    base: str | dict | None = Field(None, description="The `sftkit train` config every trial starts from: a YAML "
                                    "path (relative to the current directory) or the config inline.")
    search: dict[str, Any] = Field(default_factory=dict, description="Settings to vary: lists are grid axes; "
                                   "{log_uniform|uniform|int_uniform: [low, high]} are sampled; {log_grid: [low, "
                                   "high, n]} is a grid; keys joined by commas are tied (docs/sweep.md).")
    auto: bool = Field(False, description="Add the built-in search space for the base's method (the learning-rate "
                       "range, and the rank for LoRA; docs/sweep.md gives the sources) to `search`.")
    trials: int | None = Field(None, ge=1, description="Trials drawn from the space (the base config is one more). "
                               "Default: the whole grid; required when a setting is sampled.")
    budget: BudgetSection = Field(default_factory=BudgetSection, description="How long a trial that runs to the "
                                  "end trains, and an optional time limit for the search.")
    objective: Literal[("val_loss",) + GENERATION_METRICS] = Field(
        "val_loss", description="What chooses the winner, on the validation split only: `val_loss` (lower is "
        "better), or a metric of greedy replies (eval.max_new_tokens) through the evaluation code (higher is better).")
    rungs: int = Field(3, ge=1, le=8, description="Successive-halving rungs, at eta^-(rungs-1), ..., 1/eta and all "
                       "of the budget.")
    eta: int = Field(3, ge=2, description="At each rung the best 1/eta of the trials (at least one) continue, "
                     "resuming their own checkpoints; the rest stop.")
    seed: int = Field(0, description="Seed for sampling the search space (the trials train with the base's "
                      "train.seed).")
    reproduce: bool = Field(True, description="Train the winner again with a second seed and report the spread.")
    reproduce_seed: int | None = Field(None, description="train.seed of that second run; null = the base's "
                                       "train.seed + 1.")
    test: bool = Field(True, description="Once the winner is fixed, score the held-out test split for the winner, "
                       "the base and the reproduction, with the winner's paired gain over the base.")
    keep_checkpoints: bool = Field(False, description="Keep the trials' checkpoints/ when the sweep ends (optimizer "
                                   "state: large for full fine-tuning); the exported weights always stay.")
    output_dir: str = Field("runs/sweep", description="Where sweep.json, best.yaml, the fixed splits (data/) and "
                            "the trial run directories (trials/HASH) go.", json_schema_extra=OUTPUT_DIR)


@dataclass
class SweepPlan:
    """A validated sweep: its config, the base (as written and validated), the space and every trial's settings."""

    config: SweepConfig
    source: str | None
    base_raw: dict
    base: SFTConfig
    space: SearchSpace
    params: list[dict]

    @property
    def out_dir(self) -> Path:
        return Path(self.config.output_dir)

    @property
    def minimize(self) -> bool:
        return self.config.objective == "val_loss"

    def fingerprint(self) -> dict:
        """What the results depend on: a resumed sweep must have the same (sweep.json keeps it)."""
        dumped = self.config.model_dump(mode="json", exclude={"base", "output_dir", "keep_checkpoints"})
        return {**dumped, "base": self.base_raw, "params": self.params}


def load_sweep(path=None, overrides: list[str] | None = None, auto: bool = False) -> SweepPlan:
    """A validated sweep from a SWEEP.yaml path, a mapping or a SweepConfig, with `--set` overrides (`base.*`
    items apply to the base config). With `auto`, a plain `sftkit train` config is its own base.

    Raises:
        ConfigError: every problem, the trial configs' included.
    """
    from sftkit.sweep.auto import auto_search
    from sftkit.sweep.trial import trial_raw

    raw, source = raw_config(path, "base, search, budget, ...")
    if "base" not in raw and set(raw) & set(SFTConfig.model_fields) and set(raw) <= set(SFTConfig.model_fields):
        raw = {"base": raw, "auto": True, "output_dir": f"{raw.get('output_dir', 'runs/sft')}-sweep"}
    base_sets = [o[len("base."):] for o in overrides or [] if o.startswith("base.")]
    problems = apply_overrides(raw, [o for o in overrides or [] if not o.startswith("base.")])
    if auto:
        raw["auto"] = True
    try:
        config = SweepConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(problems + format_errors(exc, SweepConfig), source=source) from None
    if config.base is None:
        raise ConfigError(problems + ["base is required: a `sftkit train` config file, or the config inline"],
                          source=source)
    base_raw, base_source = _base_raw(config.base)
    problems += apply_overrides(base_raw, base_sets)
    try:
        base = load_config(copy.deepcopy(base_raw), model_cls=SFTConfig, check_paths="inputs")
    except ConfigError as exc:
        base = None
        problems += [(f"base {base_source}: " if base_source else "base: ") + p for p in exc.problems]

    search = dict(config.search)
    if config.auto and base is not None:
        search = {**{k: v for k, v in auto_search(base.train.method, base.train.patience).items()
                     if k not in search}, **search}
    space, space_problems = parse_space(search)
    problems += space_problems + _search_problems(config, search, space)
    if base is None:
        raise ConfigError(problems, source=source)
    problems += _sweep_problems(config, base)
    params = space.params(_num_trials(config, space), config.seed) if not space_problems else []
    for settings in params:  # each trial's config, so a value out of range is reported now
        try:
            SFTConfig.model_validate(trial_raw(base_raw, settings, Path(config.output_dir), 1))
        except ValidationError as exc:
            problems += [f"a trial's config: {p}" for p in format_errors(exc, SFTConfig)
                         if f"a trial's config: {p}" not in problems]
    if problems:
        raise ConfigError(problems, source=source)
    return SweepPlan(config, source, base_raw, base, space, params)


def _num_trials(config: SweepConfig, space: SearchSpace) -> int | None:
    """Trials drawn: `trials`; with sampled settings and none given, AUTO_TRIALS under --auto (else one, for
    checking the configs: the missing count is itself a problem); never more grid points than there are."""
    from sftkit.sweep.auto import AUTO_TRIALS

    if not space.has_distributions:
        return config.trials if config.trials is not None and config.trials <= space.grid_size else None
    return config.trials or (AUTO_TRIALS if config.auto else 1)


def _base_raw(base) -> tuple[dict, str | None]:
    if isinstance(base, dict):
        return copy.deepcopy(base), None
    return read_yaml(base), base


def _search_problems(config: SweepConfig, search: dict, space: SearchSpace) -> list[str]:
    problems = []
    for key in space.keys:
        if key in CONTROLLED or key.split(".")[0] in ("eval",):
            problems.append(f"search.{key}: the sweep sets this itself (the splits are the base's for every "
                            "trial, the length is the budget's); remove it from search")
    if not search:
        problems.append("search is empty: name the settings to vary (e.g. train.learning_rate: {log_uniform: "
                        "[1.0e-4, 1.0e-2]}), or pass --auto for the built-in space")
    if space.has_distributions and config.trials is None and not config.auto:
        problems.append("trials is required when a setting is sampled: set trials: N")
    if space.axes and not space.has_distributions and config.trials is not None and config.trials > space.grid_size:
        problems.append(f"trials is {config.trials} but the grid has {space.grid_size} points: lower trials, or "
                        "sample a setting (e.g. {log_uniform: [low, high]})")
    return problems


def _sweep_problems(config: SweepConfig, base: SFTConfig) -> list[str]:
    problems = []
    if base.data.val_path is None and base.data.val_fraction == 0:
        problems.append("the sweep chooses on validation data: set data.val_fraction > 0 or data.val_path in the "
                        "base config")
    if config.test and base.data.test_path is None and base.data.test_fraction == 0:
        problems.append("the base config has no test split for the final comparison: set data.test_fraction > 0 "
                        "or data.test_path, or set test: false")
    return problems
