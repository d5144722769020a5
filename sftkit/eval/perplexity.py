"""Perplexity of plain text (no chat template): every token after a BOS (else EOS) prefix token is predicted.

Each document is scored separately; a document longer than the model's context keeps its first tokens
(and says so in its prediction row). The corpus perplexity is exp(total NLL / total predicted tokens).
"""

from __future__ import annotations

import torch

from sftkit.data.batching import longest_first, pad_rows
from sftkit.eval.choice import prefix_token_id, token_logprobs
from sftkit.eval.tasks import TextItem


@torch.no_grad()
def score_texts(model, tokenizer, items: list[TextItem], batch_size: int = 8) -> tuple[dict, list[dict]]:
    """Per-document `nll` (summed, nats) and `num_tokens`, and the prediction rows."""
    device = next(model.parameters()).device
    limit = getattr(model.config, "max_position_embeddings", None) or 2048
    prefix = prefix_token_id(tokenizer)
    encoded, truncated = [], []
    for item in items:
        ids = [prefix] + tokenizer.encode(item.text, add_special_tokens=False)
        truncated.append(len(ids) > limit)
        encoded.append(ids[:limit])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else prefix
    nll = [0.0] * len(items)
    for chunk in longest_first([len(e) for e in encoded], batch_size):
        ids, mask = pad_rows([encoded[i] for i in chunk], pad_id)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        per_token = token_logprobs(logits[:, :-1], ids[:, 1:]) * mask[:, 1:]
        for row, i in enumerate(chunk):
            nll[i] = -float(per_token[row].sum())
    num_tokens = [len(ids) - 1 for ids in encoded]
    rows = [{"source": item.source, "line": item.line, "prompt": item.text, "nll": n, "num_tokens": t,
             **({"truncated": True} if cut else {})}
            for item, n, t, cut in zip(items, nll, num_tokens, truncated)]
    return {"nll": nll, "num_tokens": [float(t) for t in num_tokens]}, rows
