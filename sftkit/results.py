"""What the Python API returns: one typed result per verb, whose fields are the keys of the JSON file the verb
writes (`summary.json`, `eval.json`, `comparison.json`, `safety.json`, `redteam.json`, the curation report,
`sweep.json`, `export_report.json`; `report` gives the paths it wrote).

Every result keeps the whole JSON object in `raw`, so keys that a newer sftkit adds are never lost, and
`to_dict()` gives it back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path


def _from_json(cls, data: dict, **extra):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names}, **extra, raw=dict(data))


@dataclass(frozen=True)
class Result:
    raw: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return dict(self.raw)


@dataclass(frozen=True)
class TrainResult(Result):
    """`sftkit train`'s summary.json. `gain_over_prompting`, `retention`, `safety` and `redteam` are set when
    the config asked for the evaluation after training (`eval.after_training`, `eval.safety`, `eval.redteam`). A
    run paused by `stop_at_step` has `paused_at_step`, `total_steps` and `val_loss` (of the weights at the pause)
    instead."""

    output_dir: Path | None = None
    base_model: str | None = None
    method: str | None = None
    num_train_examples: int = 0
    num_replay_examples: int = 0
    num_val_examples: int = 0
    num_test_examples: int = 0
    rows_skipped: int = 0
    skipped_by_reason: dict = field(default_factory=dict)
    num_truncated: int = 0
    steps: int = 0
    initial_val_loss: float | None = None
    best_val_loss: float | None = None
    best_step: int = 0
    early_stopped: bool = False
    stopped_step: int | None = None
    trained_tokens: int = 0
    train_tokens_per_second: float = 0.0
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    peak_memory_mb: float = 0.0
    trainable_params: int = 0
    total_params: int = 0
    world_size: int = 1
    outputs: dict = field(default_factory=dict)
    estimate: dict | None = None
    gain_over_prompting: dict | None = None
    retention: float | None = None
    safety: dict | None = None
    redteam: dict | None = None
    paused_at_step: int | None = None
    total_steps: int | None = None
    val_loss: float | None = None

    @classmethod
    def from_summary(cls, summary: dict, output_dir: str | Path) -> TrainResult:
        return _from_json(cls, summary, output_dir=Path(output_dir))


@dataclass(frozen=True)
class DPOResult(Result):
    """`sftkit dpo`'s summary.json."""

    output_dir: Path | None = None
    base_model: str | None = None
    start_model: str | None = None
    method: str | None = None
    reference: str | None = None
    loss_type: str | None = None
    beta: float | None = None
    num_train_pairs: int = 0
    num_val_pairs: int = 0
    steps: int = 0
    initial_val_loss: float | None = None
    best_val_loss: float | None = None
    best_step: int = 0
    initial_val_reward_accuracy: float | None = None
    val_reward_accuracy: float | None = None
    val_reward_margin: float | None = None
    early_stopped: bool = False
    trained_pairs: int = 0
    trained_tokens: int = 0
    wall_seconds: float = 0.0
    peak_memory_mb: float = 0.0
    outputs: dict = field(default_factory=dict)
    safety: dict | None = None

    @classmethod
    def from_summary(cls, summary: dict, output_dir: str | Path) -> DPOResult:
        return _from_json(cls, summary, output_dir=Path(output_dir))


@dataclass(frozen=True)
class EvalResult(Result):
    """`sftkit eval`'s eval.json: per task `{metric: {value, n, ci_low, ci_high}}` and the headline metric."""

    output_dir: Path | None = None
    model: str | None = None
    tasks: dict = field(default_factory=dict)
    headline: dict = field(default_factory=dict)
    task_info: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def value(self, task: str) -> float:
        """The headline metric's value for `task`."""
        return self.tasks[task][self.headline[task]]["value"]


@dataclass(frozen=True)
class CompareResult(Result):
    """`sftkit compare`'s comparison.json: base zero-shot, base k-shot and tuned on the test split, the gain
    over the better baseline with its paired interval, and the forgetting table."""

    output_dir: Path | None = None
    run: str | None = None
    base_model: str | None = None
    tuned_model: str | None = None
    test: dict = field(default_factory=dict)
    accuracy: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    best_baseline: str | None = None
    gain_over_prompting: dict = field(default_factory=dict)
    forgetting: dict | None = None
    retention: float | None = None
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class SafetyResult(Result):
    """`sftkit safety`'s safety.json: refusal, over-refusal and HHH rates, each `{model, against, delta}` with
    intervals (`metrics`), and the bare rates (and deltas) in `headline`."""

    output_dir: Path | None = None
    model: str | None = None
    against: str | None = None
    metrics: dict = field(default_factory=dict)
    headline: dict = field(default_factory=dict)
    refusal_by_category: dict = field(default_factory=dict)
    classifier: str | None = None
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class RedteamResult(Result):
    """`sftkit redteam`'s redteam.json: per attack and measure `{model, against, delta_vs_direct,
    delta_vs_against}` with intervals (`attacks`), the share of seeds broken by any attack, success by hazard,
    and the bare figures in `headline`."""

    output_dir: Path | None = None
    model: str | None = None
    against: str | None = None
    target: str | None = None
    seeds: dict = field(default_factory=dict)
    attacks: dict = field(default_factory=dict)
    any_attack: dict = field(default_factory=dict)
    by_hazard: dict = field(default_factory=dict)
    headline: dict = field(default_factory=dict)
    scorers: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0

    def success(self, attack: str, measure: str = "attack_success") -> float:
        """The model's value of `measure` under `attack`."""
        return self.attacks[attack][measure]["model"]["value"]


@dataclass(frozen=True)
class CurateResult(Result):
    """The curation report: rows read, kept and rejected, and what each stage dropped and why."""

    rows_read: int = 0
    rows_kept: int = 0
    rows_rejected: int = 0
    stages: list = field(default_factory=list)
    output: str | None = None
    rejects: str | None = None
    report_path: str | None = None


@dataclass(frozen=True)
class ExportResult(Result):
    """`sftkit export`'s export_report.json: the files written (bytes), the GGUF tensor types actually written,
    every check with its numbers (`checks`, each with `passed`: True, False, or None when only reported or
    skipped), `passed` over all checks, and the command lines that serve the export (`commands`)."""

    output_dir: Path | None = None
    format: str | None = None
    quant: str | None = None
    dtype: str | None = None
    source: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    tensor_types: dict = field(default_factory=dict)
    stop_ids: list = field(default_factory=list)
    checks: dict = field(default_factory=dict)
    verified: bool = True
    passed: bool | None = None
    commands: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class SweepResult(Result):
    """`sftkit sweep`'s sweep.json: every trial (`params`, `status`, `rung`, `objective`, `history`), the
    winner (`best`, with its config file), the base config's run (`base`), the second-seed `reproduction`, and
    the held-out `test` scores with the winner's paired gain over the base."""

    output_dir: Path | None = None
    status: str | None = None
    objective: str | None = None
    minimize: bool = True
    trials: list = field(default_factory=list)
    rungs: list = field(default_factory=list)
    winner: str | None = None
    best: dict | None = None
    base: dict | None = None
    reproduction: dict | None = None
    test: dict | None = None
    data: dict | None = None

    @property
    def best_config(self) -> Path | None:
        """The winning config as YAML, ready for `sftkit train`."""
        return Path(self.best["config"]) if self.best and self.best.get("config") else None


@dataclass(frozen=True)
class ReportResult(Result):
    """`sftkit report`: the page written (`kind` `run`: RUN/report.html; `comparison`: the page comparing
    `runs`), the model cards refreshed, the screenshot when one was asked for, and the files given among the runs
    that were passed over."""

    path: Path | None = None
    kind: str = "run"
    runs: list = field(default_factory=list)
    model_cards: list = field(default_factory=list)
    screenshot: Path | None = None
    passed_over: list = field(default_factory=list)


def from_json(cls, data: dict, output_dir: str | Path | None = None):
    """A result of type `cls` from the JSON object its verb wrote."""
    extra = {"output_dir": Path(output_dir)} if output_dir is not None and "output_dir" in {
        f.name for f in dataclasses.fields(cls)} else {}
    data = {k: v for k, v in data.items() if not (extra and k == "output_dir")}
    return _from_json(cls, data, **extra)
