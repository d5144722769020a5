"""Typed configuration shared by the recipes: model, train and LoRA sections, YAML + `--set` loading, the
example YAML, and error formatting. Each recipe's whole config sits beside it (recipes/sft_config.py,
recipes/dpo_config.py). YAML is only its serialisation; `--set section.key=value` overrides it.

Every problem (unknown keys with a "did you mean", bad types, bad ranges, conflicting options) is collected
and reported at once, before any model or data is loaded.
"""

from __future__ import annotations

import copy
import difflib
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sftkit.errors import ConfigError
from sftkit.paths import check_input, path_problems


class Section(BaseModel):
    """A config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# Path fields carry their kind, so `path_problems` checks every one (subclasses and other configs included).
DATA = {"path": "data"}
MODEL = {"path": "model"}
OUTPUT_DIR = {"path": "output_dir"}
TASK = {"path": "task"}


class ModelSection(Section):
    name: str = Field("default", description="Base model: `default` (SmolLM2-135M-Instruct, offline), a local "
                      "Hugging Face directory, or a hub id.", json_schema_extra=MODEL)
    trust_remote_code: bool = Field(False, description="Run Python code shipped with the model. Off unless you "
                                    "have read that code.")
    chat_template: str | None = Field(None, description="Chat template overriding the tokenizer's own: a Jinja "
                                      "FILE (e.g. examples/chatml_tools.jinja, tool-aware ChatML for the default "
                                      "model) or the template text.")


class LoraSection(Section):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r, or alpha / sqrt(r) with rsLoRA).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: str | list[str] = Field("all-linear", description="Modules to adapt: `all-linear` or names.")
    use_dora: bool = Field(False, description="Weight-decomposed LoRA (DoRA).")
    use_rslora: bool = Field(False, description="Rank-stabilised scaling alpha / sqrt(r).")
    merge: bool = Field(False, description="Also write `merged/`, the base with the adapter folded in.")


# Peak learning rates a null `train.learning_rate` resolves to, per recipe and method; the only copy of these
# numbers (the evidence and sources are in docs/sweep.md, "Defaults"). Adapters (LoRA, QLoRA) take `lora`.
DEFAULT_LEARNING_RATES = {"sft": {"lora": 3e-3, "full": 3e-4}, "dpo": {"lora": 5e-5, "full": 5e-5}}
_LEARNING_RATE_HELP = ("Peak learning rate; null = the default for the method, written resolved into config.yaml: "
                       + "; ".join(f"{recipe} {rates['lora']:g} for LoRA, {rates['full']:g} for full fine-tuning"
                                   for recipe, rates in DEFAULT_LEARNING_RATES.items()) + " (docs/sweep.md).")


class TrainSection(Section):
    method: Literal["lora", "qlora", "full"] = Field("lora", description="LoRA adapter, QLoRA (the adapter on a "
                                                     "4-bit NF4 base; needs the `qlora` extra) or full fine-tuning.")
    micro_batch_size: int = Field(4, ge=1, description="Examples per forward pass (per process). With packing, "
                                  "the token budget of a packed micro-batch is micro_batch_size * max_length.")
    grad_accum_steps: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    num_epochs: float = Field(1.0, gt=0, description="Passes over the training data (ignored if max_steps set).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps; overrides num_epochs.")
    learning_rate: float | None = Field(None, gt=0, le=1.0, description=_LEARNING_RATE_HELP)
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field("cosine", description="Decay after warmup.")
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0, description="Fraction of steps spent warming up linearly.")
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0, description="Final LR as a fraction of the peak.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay (not applied to norms and biases).")
    adam_beta1: float = Field(0.9, ge=0.0, lt=1.0, description="AdamW beta1.")
    adam_beta2: float = Field(0.999, ge=0.0, lt=1.0, description="AdamW beta2.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Clip the global gradient norm; null disables.")
    packing: bool = Field(True, description="Pack several examples per row, with no attention across examples.")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="`auto`: bf16 on GPUs that support it; "
                                                        "on CPUs with native bf16 (AMX, AVX512-BF16), bf16 autocast "
                                                        "with fp32 weights; fp32 otherwise. Printed at start-up.")
    compile: Literal["auto", "on", "off"] = Field("auto", description="Compile each decoder layer (torch.compile, "
                                                  "dynamic length). `auto`: on CUDA, off on CPU (compiling takes "
                                                  "longer than it saves there).")
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
    report_to: list[Literal["tensorboard", "trackio", "mlflow", "wandb", "none"]] = Field(
        default_factory=lambda: ["tensorboard"], description="Experiment trackers that get the config, every "
        "metrics row and the results: tensorboard (RUN/tensorboard), trackio, mlflow, wandb (extras "
        "`sftkit[trackio]`, `sftkit[mlflow]`, `sftkit[wandb]`); `none` for metrics.jsonl only.")

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_tracker_as_list(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("report_to")
    @classmethod
    def _trackers_installed(cls, value: list[str]) -> list[str]:
        from sftkit.training.trackers import missing_packages

        problems = missing_packages(value)
        if "none" in value and len(value) > 1:
            problems.append(f"train.report_to: `none` cannot be combined with other trackers (got {value})")
        if problems:
            raise ValueError("\n".join(problems))
        return [name for name in value if name != "none"]


def default_learning_rate(recipe: str, method: str) -> float:
    """The peak learning rate a null `train.learning_rate` means for `recipe` (sft, dpo) and `method`."""
    return DEFAULT_LEARNING_RATES[recipe]["full" if method == "full" else "lora"]


def resolve_learning_rate(train: TrainSection, recipe: str) -> None:
    """Fill a null `train.learning_rate` with the recipe's default for `train.method`: the one place where a
    default learning rate is applied, so config.yaml, the start-up table and the optimizer see the same number."""
    if train.learning_rate is None:
        train.learning_rate = default_learning_rate(recipe, train.method)


def shared_problems(data, train, train_path_hint: str, info=None) -> list[str]:
    """Cross-field checks every recipe's config makes: training data given (when loading a config for a run:
    `load_config`; a config object built in Python may get its data in memory), patience with validation data."""
    problems = []
    if not data.train_path and (info is None or (info.context or {}).get("require_train_path", False)):
        problems.append(f"data.train_path is required: set it to {train_path_hint}")
    if data.val_path is None and data.val_fraction == 0 and train.patience:
        problems.append("train.patience needs validation data: set data.val_fraction > 0 or data.val_path")
    return problems


def _known_keys(model_cls, prefix="") -> list[str]:
    keys = []
    for name, info in model_cls.model_fields.items():
        keys.append(prefix + name)
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys.extend(_known_keys(sub, prefix + name + "."))
    return keys


def format_errors(exc: ValidationError, model_cls) -> list[str]:
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


def raw_config(path, sections: str = "model, data, train, ...") -> tuple[dict, str | None]:
    """(a copy of the mapping, its file or None) for a config given as a YAML path, a mapping or an object."""
    if isinstance(path, BaseModel):
        return path.model_dump(mode="json"), None
    if isinstance(path, dict):
        return copy.deepcopy(path), None
    source = str(path) if path else None
    return (read_yaml(source, sections) if source else {}), source


def load_config(path=None, overrides: list[str] | None = None, model_cls=None, require_train_path: bool = True,
                check_paths: Literal["none", "inputs", "all"] = "none"):
    """A validated config from a YAML file path, a mapping, or a config object (None: every default), with
    `--set`-style `overrides` applied, for `model_cls` (default: SFTConfig). Raises ConfigError listing every
    problem.

    require_train_path: False when the training data comes in memory (the Python API).
    check_paths: also check the paths the config names (see `path_problems`): `inputs` (data, models, suite
    files) or `all` (and output_dir), so a wrong path is reported before any model loads.
    """
    model_cls = model_cls or _sft_config()
    raw, source = raw_config(path)
    problems = apply_overrides(raw, overrides)
    if problems:
        raise ConfigError(problems, source=source)
    try:
        config = model_cls.model_validate(raw, context={"require_train_path": require_train_path})
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, model_cls), source=source) from None
    problems = path_problems(config, outputs=check_paths == "all") if check_paths != "none" else []
    if problems:
        raise ConfigError(problems, source=source)
    return config


def to_yaml(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def example_yaml(model_cls=None) -> str:
    """A documented config (default: SFTConfig) with every field at its default, help text as comments."""
    model_cls = model_cls or _sft_config()
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


def _sft_config():
    from sftkit.recipes.sft_config import SFTConfig

    return SFTConfig
