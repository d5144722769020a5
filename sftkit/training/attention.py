"""Per-example ("varlen") causal attention for packed rows, plugged into transformers' attention interface.

Packed rows hold several examples back to back. Running causal SDPA on each example's slice gives exactly
the unpacked result with no block mask, no padding and attention cost sum(len_i^2) instead of (sum len_i)^2.
Calls without `doc_lens` (padded batches, generation) fall through to the stock SDPA path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NAME = "sftkit_varlen"
_registered = False


def varlen_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, doc_lens=None,
                     **kwargs):
    """query [B, H, T, D], key/value [B, H_kv, T, D] -> ([B, T, H, D], None)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if doc_lens is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    gqa = query.shape[1] != key.shape[1]
    # `split`, not slicing: the backward of a split is one concatenation, while each slice's backward writes
    # into a zero-filled full-length gradient (a fill and an add per example, per tensor, per layer).
    outputs = [
        F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling,
                                       dropout_p=dropout if module.training else 0.0, enable_gqa=gqa).transpose(1, 2)
        for q, k, v in zip(query.split(doc_lens, dim=2), key.split(doc_lens, dim=2), value.split(doc_lens, dim=2))
    ]
    # Concatenating the [B, n, H, D] views writes the contiguous result directly (no extra transpose copy).
    return (torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0].contiguous()), None


def register() -> str:
    """Register the attention function (with SDPA's mask builder) under NAME; idempotent."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(NAME, varlen_attention)
        AttentionMaskInterface.register(NAME, sdpa_mask)
        _registered = True
    return NAME
