"""`sftkit dpo` configuration: the SFT sections where they apply (model, train, lora) plus preference data,
the DPO loss and reference, and the safety check after training. Loaded with
`sftkit.config.load_config(path, overrides, model_cls=DPOConfig)`: every problem is reported at once.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, model_validator

from sftkit.config import DATA, MODEL, OUTPUT_DIR, LoraSection, ModelSection, Section, TrainSection, shared_problems


class DPOModelSection(ModelSection):
    name: str = Field("default", description="Starting model: `default`, a local Hugging Face directory, a hub id, "
                      "or an `sftkit train` run directory (its merged/ model or its adapter, see dpo.sft_adapter).",
                      json_schema_extra=MODEL)


class PreferenceDataSection(Section):
    train_path: str | list[str] | None = Field(None, description="Preference pairs: file(s) or a directory "
                                               "(.jsonl/.json/.csv/.parquet) or a hub dataset id.",
                                               json_schema_extra=DATA)
    val_path: str | None = Field(None, description="Validation pairs. If unset, `val_fraction` of train is held out.",
                                 json_schema_extra=DATA)
    format: Literal["auto", "prompt", "messages", "implicit"] = Field(
        "auto", description="Row schema: `prompt`+chosen+rejected, `messages`+chosen+rejected, or `implicit` "
        "(whole chosen/rejected conversations); `auto` detects it per row.")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction of train held out for validation.")
    max_examples: int | None = Field(None, ge=1, description="Use at most this many training pairs (seeded).")
    max_length: int = Field(1024, ge=16, description="Maximum tokens per sequence (prompt + one reply).")
    overlong: Literal["truncate", "drop"] = Field("truncate", description="Pairs over `max_length`: keep the first "
                                                 "tokens of each sequence (`truncate`) or remove the pair (`drop`).")
    on_bad_row: Literal["error", "skip"] = Field("error", description="Bad rows: stop with file:line (`error`) "
                                                 "or count, skip and write them to rejects.jsonl (`skip`).")


class DPOSection(Section):
    beta: float = Field(0.1, gt=0, description="Strength of the pull towards the reference (larger = closer).")
    loss_type: Literal["sigmoid", "ipo"] = Field("sigmoid", description="`sigmoid` (DPO) or `ipo` (squared loss "
                                                 "on per-token log-probability ratios).")
    precompute_reference: bool = Field(False, description="Score every pair with the reference once before "
                                       "training instead of keeping a frozen copy (full fine-tuning).")
    sft_adapter: Literal["merge", "continue"] = Field(
        "merge", description="Starting from a LoRA SFT run: `merge` folds its adapter into the weights and trains "
        "a new adapter (reference = adapter disabled); `continue` trains the SFT adapter further (reference "
        "precomputed; the lora section is then ignored).")


class DPOEvalSection(Section):
    safety: bool = Field(False, description="After training, run `sftkit safety` on the result against "
                         "`safety_against`.")
    safety_against: str | None = Field(None, description="Model compared with in the safety evaluation; null = "
                                       "the starting model (model.name).", json_schema_extra=MODEL)


class DPOConfig(Section):
    """A whole `sftkit dpo` run."""

    model: DPOModelSection = Field(default_factory=DPOModelSection, description="Starting model (also the reference).")
    data: PreferenceDataSection = Field(default_factory=PreferenceDataSection, description="Preference pairs.")
    train: TrainSection = Field(default_factory=lambda: TrainSection(learning_rate=5e-5, micro_batch_size=2),
                                description="Optimisation (micro_batch_size counts pairs).")
    lora: LoraSection = Field(default_factory=LoraSection, description="LoRA settings (method: lora).")
    dpo: DPOSection = Field(default_factory=DPOSection, description="Preference loss and reference model.")
    eval: DPOEvalSection = Field(default_factory=DPOEvalSection, description="Evaluation after training.")
    output_dir: str = Field("runs/dpo", description="Where the run writes checkpoints and outputs.",
                            json_schema_extra=OUTPUT_DIR)

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo):
        problems = shared_problems(self.data, self.train, "a preference file or directory", info)
        if self.train.fsdp:
            problems.append("train.fsdp is not supported by dpo: use LoRA, or full fine-tuning under plain DDP")
        if self.train.method == "qlora":
            problems.append("train.method: qlora is for `sftkit train` only: use lora for dpo")
        if self.dpo.sft_adapter == "continue" and self.train.method != "lora":
            problems.append("dpo.sft_adapter: continue trains an SFT LoRA adapter further; it needs train.method: lora")
        if problems:
            raise ValueError("\n".join(problems))
        return self


