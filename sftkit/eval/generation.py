"""Batched greedy generation for generation tasks, and their per-example scores.

Prompts are rendered with the model's chat template (`add_generation_prompt=True`) and encoded without
adding special tokens (the template already has them). Batches are left-padded so every prompt ends at the
same position; generation stops at the end-of-turn/EOS token or after `max_new_tokens`.
"""

from __future__ import annotations

import re

import torch

from sftkit.data.packing import longest_first, pad_rows
from sftkit.eval.metrics import GENERATION_METRICS, extract_answer, score_answer
from sftkit.eval.tasks import GenerationItem


def render_prompt(tokenizer, messages: list[dict]) -> str:
    from sftkit.data.templates import ensure_chat_template

    ensure_chat_template(tokenizer)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _stop_ids(model, tokenizer) -> list[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None)


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 16) -> list[str]:
    """Greedy completions of `prompts` (already rendered text), decoded without special tokens."""
    from transformers import GenerationConfig

    device = next(model.parameters()).device
    encoded = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=pad_id,
                              eos_token_id=_stop_ids(model, tokenizer))
    outputs: list[str] = [""] * len(prompts)
    for chunk in longest_first([len(e) for e in encoded], batch_size):
        ids, mask = pad_rows([encoded[i] for i in chunk], pad_id, left=True)
        width = ids.shape[1]
        generated = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                   generation_config=config)
        for row, i in enumerate(chunk):
            outputs[i] = tokenizer.decode(generated[row, width:], skip_special_tokens=True)
    return outputs


def generation_predictions(items: list[GenerationItem], prompts: list[str], outputs: list[str],
                           extract: str | re.Pattern | None) -> tuple[dict, list[dict]]:
    """Per-example values of every generation metric (best over references) and the prediction rows."""
    values = {name: [] for name in GENERATION_METRICS}
    rows = []
    for item, prompt, output in zip(items, prompts, outputs):
        answer = extract_answer(output, extract)
        scores = score_answer("" if answer is None else answer, item.references)
        for name in GENERATION_METRICS:
            values[name].append(scores[name])
        row = {"source": item.source, "line": item.line, "prompt": prompt, "output": output,
               "reference": item.references[0], **scores}
        if len(item.references) > 1:
            row["references"] = item.references
        if extract is not None:
            row["extracted"] = answer
        rows.append(row)
    return values, rows
