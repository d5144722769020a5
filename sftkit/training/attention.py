"""Per-example ("varlen") causal attention for packed rows, plugged into transformers' attention interface.

Packed rows hold several examples back to back; attention must not cross from one example into the next.
Two implementations give exactly the result of the examples run one by one, with no block mask and no padding:

  varlen kernel      on CUDA in bf16/fp16: one call of PyTorch's `torch.nn.attention.varlen.varlen_attn`
                     (flash attention over the whole row, documents delimited by `cu_seqlens`; torch >= 2.10)
  per-document SDPA  everywhere else (CPU, fp32, older torch, attention dropout): causal SDPA on each
                     example's slice, attention cost sum(len_i^2) instead of (sum len_i)^2

Calls without `doc_lens` / `cu_seqlens` (padded batches, generation) fall through to the stock SDPA path.
flash-attn (source-only on PyPI) and the `kernels` hub (downloads) are deliberately not used.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F

NAME = "sftkit_varlen"
_registered = False


@dataclass(frozen=True)
class AttentionPath:
    """What a run's attention does, and why (printed in the start-up table)."""

    name: str  # varlen kernel | per-document SDPA | padded SDPA
    reason: str

    @property
    def uses_kernel(self) -> bool:
        return self.name == "varlen kernel"

    def describe(self) -> str:
        return f"{self.name} ({self.reason})"


def choose_attention(packing: bool, device: torch.device, dtype: torch.dtype, attention_dropout: float = 0.0
                     ) -> AttentionPath:
    """The varlen kernel on CUDA with bf16/fp16 where the installed torch has it; per-document SDPA otherwise."""
    if not packing:
        return AttentionPath("padded SDPA", "train.packing: false")
    if device.type != "cuda":
        return AttentionPath("per-document SDPA", f"packed rows on {device.type}")
    if dtype not in (torch.bfloat16, torch.float16):
        return AttentionPath("per-document SDPA", f"the varlen kernel needs bf16 or fp16, the run computes in {dtype}")
    if attention_dropout > 0:
        return AttentionPath("per-document SDPA", "the varlen kernel has no attention dropout")
    if _TORCH_VARLEN is None:
        return AttentionPath("per-document SDPA", f"torch {torch.__version__} has no torch.nn.attention.varlen")
    if torch.cuda.get_device_capability(device) < (8, 0):
        return AttentionPath("per-document SDPA", "the varlen (flash) kernel needs compute capability 8.0+")
    return AttentionPath("varlen kernel", "torch.nn.attention.varlen on CUDA")


def _load_torch_varlen():
    """(varlen_attn, its causal keyword arguments, takes `scale`, takes `enable_gqa`), or None.

    The signature changed between releases: 2.10 takes `is_causal=True`, later releases `window_size=(-1, 0)`
    for causal attention; `scale` and `enable_gqa` arrived after the first release.
    """
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    params = inspect.signature(varlen_attn).parameters
    if "window_size" in params:
        causal = {"window_size": (-1, 0)}
    elif "is_causal" in params:
        causal = {"is_causal": True}
    else:
        return None
    return varlen_attn, causal, "scale" in params, "enable_gqa" in params


_TORCH_VARLEN = _load_torch_varlen()  # resolved once: compiled graphs read it as a constant


def varlen_kernel(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cu_seqlens: torch.Tensor,
                  max_seqlen: int, scale: float | None) -> torch.Tensor:
    """Causal attention over documents of one packed row in the kernel's layout: query [T, H, D], key/value
    [T, H_kv, D], `cu_seqlens` int32 [documents + 1] on the device -> [T, H, D]. GQA (H_kv < H) is handled."""
    varlen_attn, causal, takes_scale, takes_gqa = _TORCH_VARLEN
    gqa = query.shape[1] != key.shape[1]
    extra = {}
    if gqa and takes_gqa:
        extra["enable_gqa"] = True
    elif gqa:  # the first release has no GQA: repeat each key/value head for its group of query heads
        group = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(group, dim=1), value.repeat_interleave(group, dim=1)
    default_scale = query.shape[-1] ** -0.5
    if takes_scale:
        extra["scale"] = scale
    elif scale is not None and scale != default_scale:  # no `scale` argument: fold it into the query
        query = query * (scale / default_scale)
    return varlen_attn(query, key, value, cu_seqlens, cu_seqlens, max_seqlen, max_seqlen, **causal, **extra)


@torch.compiler.disable
def per_document_sdpa(query, key, value, doc_lens, scaling, dropout: float) -> torch.Tensor:
    """query [B, H, T, D], key/value [B, H_kv, T, D] -> [B, T, H, D], causal SDPA per document.

    `doc_lens`: the documents' lengths, a list or a host tensor. Compiled layers get the tensor (a list would be
    guarded on its length and values: a recompile for nearly every batch) and this function stays out of their
    graphs, so it reads the lengths eagerly.
    """
    if isinstance(doc_lens, torch.Tensor):
        doc_lens = doc_lens.tolist()
    gqa = query.shape[1] != key.shape[1]
    # `split`, not slicing: the backward of a split is one concatenation, while each slice's backward writes
    # into a zero-filled full-length gradient (a fill and an add per example, per tensor, per layer).
    outputs = [
        F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling, dropout_p=dropout,
                                       enable_gqa=gqa).transpose(1, 2)
        for q, k, v in zip(query.split(doc_lens, dim=2), key.split(doc_lens, dim=2), value.split(doc_lens, dim=2))
    ]
    # Concatenating the [B, n, H, D] views writes the contiguous result directly (no extra transpose copy).
    return torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0].contiguous()


def varlen_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, doc_lens=None,
                     cu_seqlens=None, max_seqlen=None, **kwargs):
    """query [B, H, T, D], key/value [B, H_kv, T, D] -> ([B, T, H, D], None).

    `cu_seqlens` and `max_seqlen` (one packed row) select the varlen kernel, `doc_lens` per-document SDPA.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    dropout = dropout if module.training else 0.0
    if cu_seqlens is not None:
        # [1, H, T, D] is a transposed view of the projections' contiguous [1, T, H, D]: no copy either way
        out = varlen_kernel(query.transpose(1, 2)[0], key.transpose(1, 2)[0], value.transpose(1, 2)[0], cu_seqlens,
                            max_seqlen, scaling)
        return out.unsqueeze(0), None
    if doc_lens is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    return per_document_sdpa(query, key, value, doc_lens, scaling, dropout), None


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
