"""Every check an export runs on what it wrote, gathered into the report's `checks` (see verify.py for the pure
Python ones, llamacpp.py for those that run llama.cpp, ollama.py for the template)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from sftkit.export import llamacpp, ollama, verify
from sftkit.export.quantize import llama_cpp_available


@dataclass
class CheckInputs:
    """What the checks compare. merged: the fp32 merged model; run_model: the model as the run uses it
    (adapter applied, unmerged); conversations/references: the test prompts and their reference replies."""

    merged: object
    run_model: object
    tokenizer: object
    end_ids: list[int]
    conversations: list[list[dict]]
    references: list[str]
    max_new_tokens: int


def hf_checks(inputs: CheckInputs, export_dir: Path, dtype: str) -> dict:
    """The merged HF export read from disk against the merged weights rounded to its dtype, and the run model."""
    from sftkit.export.hf import DTYPES, chat_templates
    from sftkit.models import load_model

    templates = chat_templates(export_dir)
    exported = load_model(str(export_dir), torch.float32).eval()
    with torch.no_grad():  # the merged fp32 model is not needed unrounded after this check
        for param in inputs.merged.parameters():
            param.copy_(param.to(DTYPES[dtype]).float())
    ids = verify.chat_ids(inputs.tokenizer, inputs.conversations)
    checks = {"merged_logits": verify.check_export_logits(exported, inputs.merged, inputs.run_model, ids),
              "one_chat_template": {"passed": len(templates) == 1, "templates": templates},
              "generation_config": _generation_config_check(export_dir, inputs)}
    return checks


def _generation_config_check(export_dir: Path, inputs: CheckInputs) -> dict:
    import json

    from transformers import AutoTokenizer

    config = json.loads((export_dir / "generation_config.json").read_text(encoding="utf-8"))
    eos = config.get("eos_token_id")
    eos = eos if isinstance(eos, list) else [eos]
    tokenizer = AutoTokenizer.from_pretrained(export_dir)
    eot = inputs.end_ids and _eot_id(inputs.tokenizer)
    return {"passed": sorted(eos) == inputs.end_ids and tokenizer.eos_token_id == eot, "eos_token_id": eos,
            "stop_ids": inputs.end_ids, "tokenizer_eos_token_id": tokenizer.eos_token_id, "end_of_turn_id": eot,
            "sampling": {k: config.get(k) for k in ("temperature", "top_p", "top_k", "repetition_penalty")}}


def _eot_id(tokenizer) -> int | None:
    from sftkit.data.chat_labels import end_of_turn_token_id

    eot = end_of_turn_token_id(tokenizer)
    return eot if eot is not None else tokenizer.eos_token_id


def gguf_checks(inputs: CheckInputs, gguf_file: Path, quant: str, meta: dict, types: dict[str, str],
                hf_stage: Path) -> dict:
    """Metadata, weights read back, the staged HF model's logits and (with llama.cpp) the runtime checks."""
    from sftkit.models import load_model

    weights = verify.check_gguf_weights(gguf_file, inputs.merged, types, meta["architecture"])
    checks = {"gguf_metadata": verify.check_gguf_metadata(meta, weights.pop("gguf_config"), inputs.merged,
                                                          inputs.tokenizer, inputs.end_ids),
              "gguf_weights": weights}
    staged = load_model(str(hf_stage), torch.float32).eval()
    ids = verify.chat_ids(inputs.tokenizer, inputs.conversations)
    checks["merged_logits"] = verify.check_export_logits(staged, inputs.merged, inputs.run_model, ids)
    del staged
    checks.update(runtime_checks(inputs, gguf_file, quant))
    return checks


def runtime_checks(inputs: CheckInputs, gguf_file: Path, quant: str) -> dict:
    names = ("llama_cpp_tokens", "llama_cpp_logits", "llama_cpp_replies", "llama_cpp_stops")
    if not llama_cpp_available():
        return {name: {"passed": None, "skipped": "llama-cpp-python is not installed (the extra sftkit[gguf])"}
                for name in names}
    from sftkit.generation import generate, render_prompt

    tokenizer = inputs.tokenizer
    prompts = [render_prompt(tokenizer, c) for c in inputs.conversations]
    prompt_ids = verify.chat_ids(tokenizer, inputs.conversations)
    full_ids = _teacher_forced_ids(tokenizer, inputs)
    hf_replies = generate(inputs.run_model, tokenizer, inputs.conversations, inputs.max_new_tokens)
    # the context holds the longest check sequence (logits for every position are kept: n_ctx x vocab floats)
    longest = max(len(ids) for ids in full_ids + [p + [0] * inputs.max_new_tokens for p in prompt_ids])
    llm = llamacpp.open_gguf(gguf_file, -(-longest // 64) * 64)
    try:
        checks = {"llama_cpp_tokens": llamacpp.check_tokens(llm, prompts, prompt_ids)}
        logits = llamacpp.check_logits(llm, full_ids, lambda ids: verify.logits_of(inputs.run_model, ids).numpy())
        logits["passed"] = None  # reported per quant type; the replies and stops checks are the gates
        checks["llama_cpp_logits"] = logits
        replies, stops = llamacpp.check_replies(llm, tokenizer, prompt_ids, hf_replies, quant, inputs.end_ids,
                                                inputs.max_new_tokens)
        checks["llama_cpp_replies"], checks["llama_cpp_stops"] = replies, stops
    finally:
        llm.close()
    return checks


def _teacher_forced_ids(tokenizer, inputs: CheckInputs) -> list[list[int]]:
    """Each test conversation with its reference reply (the prompt alone when there is no reference)."""
    out = []
    for k, conversation in enumerate(inputs.conversations):
        if k < len(inputs.references):
            conversation = [*conversation, {"role": "assistant", "content": inputs.references[k]}]
        text = tokenizer.apply_chat_template(conversation, tokenize=False,
                                             add_generation_prompt=k >= len(inputs.references))
        out.append(tokenizer.encode(text, add_special_tokens=False))
    return out


def template_check(template: str, tokenizer, system: str | None, bos_text: str) -> dict:
    result = ollama.check_template(template, tokenizer, system, bos_text).to_dict()
    result["bos_added_by_runtime"] = bos_text
    return result
