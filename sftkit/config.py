"""Typed run configuration. YAML is only its serialisation; `--set section.key=value` overrides it.

Every problem (unknown keys with a "did you mean", bad types, bad ranges, conflicting options) is collected
and reported at once, before any model or data is loaded.
"""

from __future__ import annotations

import difflib
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sftkit.errors import ConfigError
from sftkit.paths import check_input, path_problems


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# Path fields carry their kind, so `path_problems` checks every one (subclasses and other configs included).
DATA = {"path": "data"}
MODEL = {"path": "model"}
OUTPUT_DIR = {"path": "output_dir"}
TASK = {"path": "task"}


class ModelSection(_Section):
    name: str = Field("default", description="Base model: `default` (SmolLM2-135M-Instruct, offline), a local "
                      "Hugging Face directory, or a hub id.", json_schema_extra=MODEL)
    trust_remote_code: bool = Field(False, description="Run Python code shipped with the model. Off unless you "
                                    "have read that code.")
    chat_template: str | None = Field(None, description="Jinja chat template overriding the tokenizer's own.")


class DataSection(_Section):
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


class LoraSection(_Section):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r, or alpha / sqrt(r) with rsLoRA).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: str | list[str] = Field("all-linear", description="Modules to adapt: `all-linear` or names.")
    use_dora: bool = Field(False, description="Weight-decomposed LoRA (DoRA).")
    use_rslora: bool = Field(False, description="Rank-stabilised scaling alpha / sqrt(r).")
    merge: bool = Field(False, description="Also write `merged/`, the base with the adapter folded in.")


class TrainSection(_Section):
    method: Literal["lora", "full"] = Field("lora", description="LoRA adapter or full fine-tuning.")
    micro_batch_size: int = Field(4, ge=1, description="Examples per forward pass (per process). With packing, "
                                  "the token budget of a packed micro-batch is micro_batch_size * max_length.")
    grad_accum_steps: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    num_epochs: float = Field(1.0, gt=0, description="Passes over the training data (ignored if max_steps set).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps; overrides num_epochs.")
    learning_rate: float = Field(2e-4, gt=0, le=1.0, description="Peak learning rate.")
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field("cosine", description="Decay after warmup.")
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0, description="Fraction of steps spent warming up linearly.")
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0, description="Final LR as a fraction of the peak.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay (not applied to norms and biases).")
    adam_beta1: float = Field(0.9, ge=0.0, lt=1.0, description="AdamW beta1.")
    adam_beta2: float = Field(0.999, ge=0.0, lt=1.0, description="AdamW beta2.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Clip the global gradient norm; null disables.")
    packing: bool = Field(True, description="Pack several examples per row, with no attention across examples.")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="`auto`: bf16 on GPUs that support it, "
                                                        "fp32 on CPU.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward to save memory.")
    seed: int = Field(42, description="Seed for data order, splits, LoRA init and dropout.")
    eval_every: int = Field(50, ge=1, description="Validate every N optimizer steps (also at start and end).")
    save_every: int = Field(100, ge=1, description="Checkpoint every N optimizer steps.")
    keep_last: int = Field(2, ge=1, description="Checkpoints kept; older ones are deleted.")
    patience: int | None = Field(None, ge=1, description="Stop after this many evaluations without improvement.")
    min_delta: float = Field(0.0, ge=0.0, description="Improvement in validation loss that counts.")
    log_every: int = Field(1, ge=1, description="Write metrics every N optimizer steps.")
    fsdp: bool = Field(False, description="Shard parameters with FSDP under torchrun (full fine-tuning only).")
    num_threads: int | None = Field(None, ge=1, description="CPU threads for torch (default: all cores).")


class EvalSection(_Section):
    after_training: bool = Field(False, description="Run `compare` at the end of training.")
    shots: int = Field(5, ge=0, description="Examples in the few-shot prompting baseline.")
    max_new_tokens: int = Field(32, ge=1, description="Generation limit for generation tasks.")
    metric: Literal["exact_match", "normalized_exact_match", "contains", "token_f1"] = Field(
        "normalized_exact_match", description="Headline metric for the task comparison.")
    suite: list[str] | None = Field(None, description="Forgetting suite (BIG-bench names, files); null = default.",
                                    json_schema_extra=TASK)
    suite_max_examples: int = Field(50, ge=1, description="Examples per suite task (seeded subsample).")
    safety: bool = Field(False, description="Run the safety evaluation (refusals, over-refusals, HHH) against "
                         "the base model at the end of training; headline rates go into summary.json.")


class SFTConfig(_Section):
    """A whole `sftkit train` run."""

    model: ModelSection = Field(default_factory=ModelSection, description="Base model.")
    data: DataSection = Field(default_factory=DataSection, description="Training and held-out data.")
    train: TrainSection = Field(default_factory=TrainSection, description="Optimisation.")
    lora: LoraSection = Field(default_factory=LoraSection, description="LoRA settings (method: lora).")
    eval: EvalSection = Field(default_factory=EvalSection, description="Evaluation after training.")
    output_dir: str = Field("runs/sft", description="Where the run writes checkpoints and outputs.",
                            json_schema_extra=OUTPUT_DIR)

    @model_validator(mode="after")
    def _cross_checks(self):
        problems = []
        if not self.data.train_path:
            problems.append("data.train_path is required: set it to a file, directory or bigbench:TASK")
        if self.train.fsdp and self.train.method != "full":
            problems.append("train.fsdp needs train.method: full (LoRA adapters are small; use plain DDP)")
        if self.data.replay_fraction > 0 and not self.data.replay_path:
            problems.append("data.replay_fraction > 0 needs data.replay_path")
        if self.data.val_path is None and self.data.val_fraction == 0 and self.train.patience:
            problems.append("train.patience needs validation data: set data.val_fraction > 0 or data.val_path")
        if self.data.val_fraction + self.data.test_fraction >= 0.9:
            problems.append("data.val_fraction + data.test_fraction must leave training data (< 0.9)")
        if problems:
            raise ValueError("\n".join(problems))
        return self


def _known_keys(model_cls, prefix="") -> list[str]:
    keys = []
    for name, info in model_cls.model_fields.items():
        keys.append(prefix + name)
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys.extend(_known_keys(sub, prefix + name + "."))
    return keys


def _format_errors(exc: ValidationError, model_cls) -> list[str]:
    known = _known_keys(model_cls)
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(loc, known, n=1, cutoff=0.6)
            problems.append(f"unknown key {loc!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
        elif err["type"] == "value_error":
            problems.extend(str(err["msg"]).removeprefix("Value error, ").split("\n"))
        else:
            problems.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
    return problems


def parse_override(item: str) -> tuple[list[str], object]:
    """`section.key=value` -> (['section', 'key'], value parsed as YAML)."""
    key, _, value = item.partition("=")
    if "=" not in item or not key.strip():
        raise ConfigError([f"--set {item!r}: use --set section.key=value"])
    try:
        return key.strip().split("."), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ConfigError([f"--set {item!r}: the value is not valid YAML ({getattr(exc, 'problem', exc)}): quote "
                           "it, e.g. --set 'key=\"text\"'"]) from None


def read_yaml(path: str, sections: str = "model, data, train, ...") -> dict:
    """The mapping in YAML file `path`. Raises UserError for a missing, unreadable or non-UTF-8 file, bad YAML
    (with its line) or a top level that is not a mapping."""
    p = check_input(path, "config file", "file", missing="check the path (`sftkit config example` prints one)")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(["not valid UTF-8: re-save the file as UTF-8"], source=path, line=line) from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError([f"invalid YAML ({getattr(exc, 'problem', None) or exc}): fix the syntax here "
                           "(indentation, a missing ':' or an unclosed quote or bracket)"], source=path,
                          line=mark.line + 1 if mark else None) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"top level must be a mapping of sections ({sections})"], source=path)
    return raw


def apply_overrides(raw: dict, overrides: list[str] | None, strip_prefix: str | None = None) -> list[str]:
    """Apply `--set a.b=value` items to `raw` in place; return the problems (an item naming a non-section).

    strip_prefix: a leading key dropped from every item (`curate.near.threshold` -> `near.threshold`).
    """
    problems = []
    for item in overrides or []:
        keys, value = parse_override(item)
        if strip_prefix and keys[0] == strip_prefix and len(keys) > 1:
            keys = keys[1:]
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                problems.append(f"--set {item!r}: {k} is not a section")
                break
        else:
            node[keys[-1]] = value
    return problems


def load_config(path: str | None, overrides: list[str] | None = None, model_cls=SFTConfig,
                check_paths: Literal["none", "inputs", "all"] = "none"):
    """Read YAML (optional), apply overrides, validate. Raises ConfigError listing every problem.

    check_paths: also check the paths the config names (see `path_problems`): `inputs` (data, models, suite
    files) or `all` (and output_dir), so a wrong path is reported before any model loads.
    """
    raw = read_yaml(path) if path else {}
    problems = apply_overrides(raw, overrides)
    if problems:
        raise ConfigError(problems, source=path)
    try:
        config = model_cls.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, model_cls), source=path) from None
    problems = path_problems(config, outputs=check_paths == "all") if check_paths != "none" else []
    if problems:
        raise ConfigError(problems, source=path)
    return config


def to_yaml(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def example_yaml(model_cls=SFTConfig) -> str:
    """A documented config with every field at its default, help text as comments."""
    lines = [f"# sftkit config: {model_cls.__doc__.strip()}"]

    def emit(cls, instance, indent):
        for name, info in cls.model_fields.items():
            value = getattr(instance, name)
            pad = "  " * indent
            if isinstance(value, BaseModel):
                lines.append(f"{pad}# {info.description}")
                lines.append(f"{pad}{name}:")
                emit(type(value), value, indent + 1)
            else:
                dumped = yaml.safe_dump({name: value}, default_flow_style=True, width=1000).strip()[1:-1]
                lines.append(f"{pad}{dumped}  # {info.description}")

    emit(model_cls, model_cls.model_construct(), 0)
    return "\n".join(lines) + "\n"
