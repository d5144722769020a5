"""Batched chat generation with the model's own chat template (left padding, greedy by default)."""

from __future__ import annotations

import torch

from sftkit.data.templates import ensure_chat_template


@torch.no_grad()
def generate_replies(model, tokenizer, conversations: list[list[dict]], max_new_tokens: int = 256,
                     temperature: float = 0.0, batch_size: int = 8, guard=None) -> list[str]:
    """One reply per conversation (each ends with a user turn); `guard` (sftkit.safety.guardrails.Guardrail)
    filters requests before and replies after generation."""
    if guard is not None:
        return guard.apply(lambda allowed: generate_replies(model, tokenizer, allowed, max_new_tokens, temperature,
                                                            batch_size), conversations)
    ensure_chat_template(tokenizer)
    tokenizer.padding_side = "left"
    replies = []
    for start in range(0, len(conversations), batch_size):
        texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                 for c in conversations[start:start + batch_size]]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id, **sampling)
        for row in out[:, enc["input_ids"].shape[1]:]:
            replies.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return replies
