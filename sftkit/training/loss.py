"""Causal-LM loss summed over trained tokens, computing vocabulary logits only where labels exist.

Prompt and padding positions need no logits, so the decoder's hidden states are gathered at trained
positions first and projected in chunks; each chunk is recomputed in backward (activation checkpointing) so
the full [tokens, vocab] logits tensor is never held in memory. The caller divides the returned sum by the
number of trained tokens of the whole optimizer step (all micro-batches, all processes): the mean of
micro-batch means would weight short micro-batches more.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from sftkit.training.attention import NAME as VARLEN
from sftkit.data.batching import MicroBatch
from sftkit.data.chat_labels import IGNORE_INDEX
from sftkit.models import unwrap

CHUNK_TOKENS = 2048


def _chunk_ce_sum(hidden: torch.Tensor, head: torch.nn.Module, targets: torch.Tensor) -> torch.Tensor:
    logits = head(hidden).float()
    return F.cross_entropy(logits, targets, reduction="sum")


def ce_sum(hidden: torch.Tensor, head: torch.nn.Module, targets: torch.Tensor,
           chunk_tokens: int = CHUNK_TOKENS) -> torch.Tensor:
    """Sum of cross-entropy of `head(hidden)` vs `targets` ([N, H], [N]); a connected zero when N == 0."""
    if targets.numel() == 0:
        # Keeps every parameter in the graph so DDP and optimizers see zero grads, not missing ones.
        return hidden.sum() * 0.0 + sum(p.sum() * 0.0 for p in head.parameters())
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, targets.numel(), chunk_tokens):
        h, t = hidden[start:start + chunk_tokens], targets[start:start + chunk_tokens]
        if torch.is_grad_enabled():
            total = total + checkpoint(_chunk_ce_sum, h, head, t, use_reentrant=False)
        else:
            total = total + _chunk_ce_sum(h, head, t)
    return total


class CausalLMLoss(torch.nn.Module):
    """Wraps a causal LM so that `forward(batch)` returns the summed loss; DDP/FSDP wrap this module.

    Calling the decoder and the output head separately (instead of the model's own forward with labels)
    is what lets logits be computed at trained positions only.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def hidden_states(self, batch: MicroBatch) -> torch.Tensor:
        base = unwrap(self.model)
        decoder = base.get_decoder()
        kwargs = {}
        attention_mask = batch.attention_mask
        if batch.doc_lens is not None:
            if base.config._attn_implementation != VARLEN:
                raise RuntimeError("packed batches need the model's attention set to sftkit_varlen")
            # A prepared 4D mask is passed through untouched by transformers, skipping its O(T^2) block-mask
            # construction; varlen attention ignores it and uses doc_lens instead.
            attention_mask = torch.ones((1, 1, 1, 1), dtype=torch.bool, device=batch.input_ids.device)
            kwargs["doc_lens"] = batch.doc_lens
        out = decoder(input_ids=batch.input_ids, attention_mask=attention_mask, position_ids=batch.position_ids,
                      use_cache=False, **kwargs)
        return out.last_hidden_state

    def forward(self, batch: MicroBatch) -> torch.Tensor:
        hidden = self.hidden_states(batch)
        keep = batch.target_ids != IGNORE_INDEX
        head = unwrap(self.model).get_output_embeddings()
        return ce_sum(hidden[keep], head, batch.target_ids[keep])
