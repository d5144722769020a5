"""Causal-LM loss summed over trained tokens, computing vocabulary logits only where labels exist.

Prompt and padding positions need no logits, so the decoder's hidden states are gathered at trained
positions first (`MicroBatch.trained_index`, built on the host: no wait on the device to learn how many) and
projected in chunks; each chunk is recomputed in backward (activation checkpointing) so the full
[tokens, vocab] logits tensor is never held in memory. The chunks run in fp32 whatever the run's precision
(outside autocast): a bf16 logit is off by up to 0.4% of its size, which moves the log-sum-exp. The caller divides the returned sum by the
number of trained tokens of the whole optimizer step (all micro-batches, all processes): the mean of
micro-batch means would weight short micro-batches more.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from sftkit.training.attention import NAME as VARLEN
from sftkit.data.batching import MicroBatch
from sftkit.models import unwrap

CHUNK_TOKENS = 2048


def _chunk_ce_sum(hidden: torch.Tensor, head: torch.nn.Module, targets: torch.Tensor) -> torch.Tensor:
    with torch.autocast(hidden.device.type, enabled=False):
        logits = head(hidden.to(head.weight.dtype)).float()
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
    is what lets logits be computed at trained positions only. `use_kernel`: packed rows go through the varlen
    kernel (`cu_seqlens`), else per-document SDPA (`doc_lens`); see sftkit.training.attention.
    """

    def __init__(self, model: torch.nn.Module, use_kernel: bool = False):
        super().__init__()
        self.model = model
        self.use_kernel = use_kernel

    def hidden_states(self, batch: MicroBatch) -> torch.Tensor:
        base = unwrap(self.model)
        decoder = base.get_decoder()
        kwargs = {}
        attention_mask = batch.attention_mask
        if batch.doc_lens is not None:
            if base.config._attn_implementation != VARLEN:
                raise RuntimeError("packed batches need the model's attention set to sftkit_varlen")
            # A prepared 4D mask is passed through untouched by transformers, skipping its O(T^2) block-mask
            # construction; varlen attention ignores it and uses the document boundaries instead.
            attention_mask = torch.ones((1, 1, 1, 1), dtype=torch.bool, device=batch.input_ids.device)
            if self.use_kernel:
                kwargs.update(cu_seqlens=batch.cu_seqlens, max_seqlen=batch.max_seqlen)
            else:  # a host tensor, not the list: see attention.per_document_sdpa
                kwargs["doc_lens"] = torch.tensor(batch.doc_lens)
        out = decoder(input_ids=batch.input_ids, attention_mask=attention_mask, position_ids=batch.position_ids,
                      use_cache=False, **kwargs)
        return out.last_hidden_state

    def trained_hidden(self, batch: MicroBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden states [N, H], targets [N]) at the batch's N trained positions, in row-major order."""
        hidden = self.hidden_states(batch)
        hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch.trained_index)
        return hidden, batch.target_ids.reshape(-1).index_select(0, batch.trained_index)

    def forward(self, batch: MicroBatch) -> torch.Tensor:
        hidden, targets = self.trained_hidden(batch)
        return ce_sum(hidden, unwrap(self.model).get_output_embeddings(), targets)
