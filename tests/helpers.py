"""Helpers shared by test modules (fixtures live in conftest.py files; plain functions live here)."""

from __future__ import annotations

import torch


def greedy_text(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """Token-by-token argmax over full forward passes of an already rendered `prompt` (no padding, no cache,
    no generate()), stopping at the tokenizer's EOS; decoded without special tokens."""
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    new: list[int] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            token = int(model(torch.tensor([ids + new])).logits[0, -1].argmax())
            if token == tokenizer.eos_token_id:
                break
            new.append(token)
    return tokenizer.decode(new, skip_special_tokens=True)


def tuned_lora_model(base_dir, lora):
    """The model in `base_dir` wrapped with a LoRA adapter (`lora`: a LoraSection) whose B matrices are random,
    so the adapter changes the outputs (a fresh adapter's B is zero: the identity)."""
    from transformers import AutoModelForCausalLM

    from sftkit.models import apply_lora

    model = apply_lora(AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32), lora)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    return model
