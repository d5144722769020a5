"""What an export starts from: a run directory (its adapter or merged weights, its base model, its test prompts
and training length) or a plain model; and the model in fp32 with any adapter folded in.

Adapters are merged in fp32 into the unquantized base. A base stored in 4 bits (bitsandbytes, GPTQ, AWQ, ...)
is refused: the merged delta would be rounded to the base's 4-bit grid, which changes the model's outputs
(peft warns the same), so the export would not be the model that was trained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sftkit.errors import UserError

# Prompts that checks use when the source is a plain model (a run has its own test split).
PROBE_PROMPTS = ("What is the capital of France?", "Write one sentence about the sea.", "List three colours.")
DEFAULT_CONTEXT_TOKENS = 4096  # Ollama's num_ctx for a plain model, capped by the model's own limit


@dataclass
class ExportSource:
    """A resolved export source.

    name: what the user gave. run_dir: the run directory, if it is one. base_model: the model the weights start
    from (a path or hub id). adapter_dir / merged_dir: the run's weights. tokenizer_dir: where its tokenizer is.
    conversations: the chat prompts the checks use (each ends with a user turn); references: their reference
    replies (the run's test answers), teacher-forced by the llama.cpp check. context_tokens: training's
    max_length (Ollama's num_ctx).
    """

    name: str
    run_dir: Path | None
    base_model: str
    adapter_dir: Path | None
    merged_dir: Path | None
    tokenizer_dir: str
    conversations: list[list[dict]] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    context_tokens: int | None = None
    trust_remote_code: bool = False

    @property
    def display_name(self) -> str:
        return (self.run_dir or Path(self.name)).name or self.name


def resolve_source(name: str, base: str | None = None) -> ExportSource:
    """The source named by `name` (a run directory, a model directory, a hub id or `default`); `base` replaces
    the base model a run's adapter was trained on (e.g. the unquantized original of a 4-bit base)."""
    from sftkit.models import is_run_dir, resolve_model_path, run_base_model

    if is_run_dir(name):
        run = Path(name)
        merged = run / "merged" if (run / "merged" / "config.json").is_file() else None
        adapter = run / "adapter" if (run / "adapter" / "adapter_config.json").is_file() else None
        if merged is None and adapter is None:
            raise UserError(f"{run} has no weights (neither merged/ nor adapter/): export a finished training run")
        config = _run_config(run)
        base_model = resolve_model_path(base or run_base_model(run))
        weights = merged if merged is not None else adapter
        tokenizer_dir = str(weights) if (weights / "tokenizer_config.json").is_file() else base_model
        source = ExportSource(name, run, base_model, adapter if merged is None else None, merged, tokenizer_dir,
                              context_tokens=(config.get("data") or {}).get("max_length"),
                              trust_remote_code=bool((config.get("model") or {}).get("trust_remote_code", False)))
        _add_test_prompts(source, run / "data" / "test.jsonl")
        return source
    path = resolve_model_path(name)
    source = ExportSource(name, None, path, None, None, path)
    source.conversations = [[{"role": "user", "content": p}] for p in PROBE_PROMPTS]
    return source


def _run_config(run: Path) -> dict:
    import yaml

    path = run / "config.yaml"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def _add_test_prompts(source: ExportSource, test_file: Path) -> None:
    if test_file.is_file():
        from sftkit.eval.tasks import load_task

        items = load_task(str(test_file)).items
        source.conversations = [item.messages for item in items]
        source.references = [item.references[0] for item in items]
    if not source.conversations:
        source.conversations = [[{"role": "user", "content": p}] for p in PROBE_PROMPTS]


def quantization_problem(model_dir: str) -> str | None:
    """Why the weights in `model_dir` cannot take a merged adapter (None when they can)."""
    config_file = Path(model_dir) / "config.json"
    if not config_file.is_file():
        return None
    quantization = json.loads(config_file.read_text(encoding="utf-8")).get("quantization_config")
    if not quantization:
        return None
    bits = quantization.get("bits") or (4 if quantization.get("load_in_4bit") else 8 if quantization.get(
        "load_in_8bit") else None)
    method = quantization.get("quant_method", "quantized")
    return (f"the base model {model_dir} is stored {method} ({bits or '?'}-bit): merging the adapter into quantized "
            "weights rounds the update to the base's grid and changes the model's outputs. Pass --base with the "
            "unquantized (fp16/bf16/fp32) checkpoint the adapter was trained on")


def load_reference(source: ExportSource):
    """The model as the run uses it: fp32, adapter applied but not merged (what `sftkit generate RUN` runs)."""
    import torch
    from peft import PeftModel

    from sftkit.models import load_model

    if source.merged_dir is not None:
        return load_model(str(source.merged_dir), torch.float32, source.trust_remote_code).eval()
    model = load_model(source.base_model, torch.float32, source.trust_remote_code)
    if source.adapter_dir is not None:
        model = PeftModel.from_pretrained(model, source.adapter_dir)
    return model.eval()


def load_merged(source: ExportSource):
    """The weights to export: fp32, with the adapter folded into the unquantized base by peft."""
    import torch
    from peft import PeftModel

    from sftkit.models import load_model

    if source.merged_dir is not None:
        return load_model(str(source.merged_dir), torch.float32, source.trust_remote_code).eval()
    problem = quantization_problem(source.base_model) if source.adapter_dir is not None else None
    if problem:
        raise UserError(problem)
    model = load_model(source.base_model, torch.float32, source.trust_remote_code)
    if source.adapter_dir is not None:
        model = PeftModel.from_pretrained(model, source.adapter_dir).merge_and_unload()
    return model.eval()


def load_source_tokenizer(source: ExportSource):
    from sftkit.models import load_tokenizer

    return load_tokenizer(source.tokenizer_dir, source.trust_remote_code)
