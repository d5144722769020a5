"""`sftkit train` configuration: the shared sections (model, train, lora) plus SFT data and evaluation after
training. Loaded with `sftkit.config.load_config(path, overrides)`: every problem is reported at once.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from sftkit.config import DATA, OUTPUT_DIR, TASK, LoraSection, ModelSection, Section, TrainSection
from sftkit.config import resolve_learning_rate, shared_problems
from sftkit.errors import UserError
from sftkit.eval.metrics import GENERATION_METRICS, parse_extract
from sftkit.eval.settings import CompareSettings, EvalSettings


class DataSection(Section):
    train_path: str | list[str] | None = Field(None, description="Training data: file(s), a directory, "
                                               "`bigbench:TASK`, or a hub dataset id.", json_schema_extra=DATA)
    val_path: str | None = Field(None, description="Validation data. If unset, `val_fraction` of train is held out.",
                                 json_schema_extra=DATA)
    test_path: str | None = Field(None, description="Test data for `compare`. If unset, `test_fraction` of train "
                                  "is held out (never used for early stopping).", json_schema_extra=DATA)
    format: Literal["auto", "messages", "sharegpt", "alpaca", "prompt_completion", "bigbench"] = Field(
        "auto", description="Row schema; `auto` detects it per source.")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction of train held out for validation.")
    test_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction of train held out as a test split.")
    max_examples: int | None = Field(None, ge=1, description="Use at most this many training examples (after "
                                     "splitting; seeded).")
    max_length: int = Field(1024, ge=16, description="Maximum tokens per example.")
    overlong: Literal["truncate", "drop"] = Field("truncate", description="Examples over `max_length`: keep the "
                                                 "first tokens (`truncate`) or remove them (`drop`); counted either way.")
    train_on: Literal["all", "last"] = Field("all", description="Train on every assistant turn or only the last.")
    on_bad_row: Literal["error", "skip"] = Field("error", description="Bad rows: stop with file:line (`error`) "
                                                 "or count, skip and write them to rejects.jsonl (`skip`).")
    replay_path: str | None = Field(None, description="General data mixed into training to limit forgetting.",
                                    json_schema_extra=DATA)
    replay_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction of training examples drawn from "
                                   "`replay_path`.")


class EvalSection(Section):
    """Defaults come from sftkit/eval/settings.py, the one source `sftkit eval` and `compare` use too."""

    after_training: bool = Field(False, description="Run `compare` at the end of training.")
    shots: int = Field(CompareSettings.shots, ge=0, description="Examples in the few-shot prompting baseline.")
    max_new_tokens: int = Field(EvalSettings.max_new_tokens, ge=1,
                                description="Generation limit for generation tasks.")
    metric: Literal[GENERATION_METRICS] = Field(EvalSettings.metric,
                                                description="Headline metric for the task comparison.")
    extract: str | None = Field(EvalSettings.extract, description="Answer extraction before scoring: `first_line` "
                                "or `regex:PATTERN` (group 1 if any); null scores the whole reply.")
    suite: list[str] | None = Field(None, description="Forgetting suite (BIG-bench names, files); null = default.",
                                    json_schema_extra=TASK)
    suite_max_examples: int = Field(CompareSettings.suite_max_examples, ge=1,
                                    description="Examples per suite task (seeded subsample).")
    safety: bool = Field(False, description="Run the safety evaluation (refusals, over-refusals, HHH) against "
                         "the base model at the end of training; headline rates go into summary.json.")

    @field_validator("extract")
    @classmethod
    def _extract_parses(cls, value):
        try:
            parse_extract(value)
        except UserError as exc:  # reported with the other config problems, before any model loads
            raise ValueError(exc.message) from None
        return value


class SFTConfig(Section):
    """A whole `sftkit train` run."""

    model: ModelSection = Field(default_factory=ModelSection, description="Base model.")
    data: DataSection = Field(default_factory=DataSection, description="Training and held-out data.")
    train: TrainSection = Field(default_factory=TrainSection, description="Optimisation.")
    lora: LoraSection = Field(default_factory=LoraSection, description="LoRA settings (method: lora).")
    eval: EvalSection = Field(default_factory=EvalSection, description="Evaluation after training.")
    output_dir: str = Field("runs/sft", description="Where the run writes checkpoints and outputs.",
                            json_schema_extra=OUTPUT_DIR)

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo):
        resolve_learning_rate(self.train, "sft")
        problems = shared_problems(self.data, self.train, "a file, directory or bigbench:TASK", info)
        if self.train.fsdp and self.train.method != "full":
            problems.append("train.fsdp needs train.method: full (LoRA adapters are small; use plain DDP)")
        if self.data.replay_fraction > 0 and not self.data.replay_path:
            problems.append("data.replay_fraction > 0 needs data.replay_path")
        if self.data.val_fraction + self.data.test_fraction >= 0.9:
            problems.append("data.val_fraction + data.test_fraction must leave training data (< 0.9)")
        if problems:
            raise ValueError("\n".join(problems))
        return self
