"""Packed attention: the CUDA varlen adapter against a stand-in kernel, the installed-signature adaptation, rows
padded to a multiple of 64, and which path a run picks. Tolerances: tests/recipes/trajectory.py (fp32)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import sftkit.training.attention as attention
from sftkit.data.batching import collate, max_seqlen_bucket
from sftkit.training.loss import CausalLMLoss
from tests.helpers import packed_examples
from tests.recipes.trajectory import GRAD_RTOL, LOSS_RTOL

PAD_ID = 2


def stand_in_kernel(query, key, value, cu_seqlens, max_seqlen, scale):
    """The varlen kernel's contract in plain PyTorch: [T, H, D] inputs, documents delimited by cu_seqlens,
    causal SDPA per document (H_kv < H allowed). Records what it was given."""
    stand_in_kernel.calls.append((cu_seqlens.tolist(), max_seqlen, query.shape, key.shape))
    outs = []
    for start, end in zip(cu_seqlens[:-1].tolist(), cu_seqlens[1:].tolist()):
        q, k, v = (x[start:end].transpose(0, 1).unsqueeze(0) for x in (query, key, value))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=k.shape[1] != q.shape[1])
        outs.append(out[0].transpose(0, 1))
    return torch.cat(outs)


stand_in_kernel.calls = []


def _loss_and_grads(model, batch, use_kernel: bool):
    model.zero_grad(set_to_none=True)
    loss = CausalLMLoss(model, use_kernel=use_kernel)(batch)
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters()}


def _assert_same(a, b):
    loss_a, grads_a = a
    loss_b, grads_b = b
    assert loss_a == pytest.approx(loss_b, rel=LOSS_RTOL, abs=0)
    for name, g in grads_b.items():
        assert (grads_a[name] - g).abs().max() <= GRAD_RTOL * g.abs().max(), name


def test_varlen_adapter_with_stand_in_kernel_equals_per_document_sdpa(tiny_model, monkeypatch):
    """The kernel path (cu_seqlens, max_seqlen, [T, H, D] views, GQA: the tiny model has 4 query and 2 key/value
    heads) gives the per-document path's loss and gradients on the same packed row."""
    tiny_model.config._attn_implementation = attention.register()
    monkeypatch.setattr(attention, "varlen_kernel", stand_in_kernel)
    batch = collate(packed_examples([23, 7, 40, 12]), True, PAD_ID)
    assert batch.cu_seqlens.tolist() == [0, 23, 30, 70, 82] and batch.cu_seqlens.dtype == torch.int32
    assert batch.max_seqlen == 64
    stand_in_kernel.calls.clear()
    kernel = _loss_and_grads(tiny_model, batch, use_kernel=True)
    assert len(stand_in_kernel.calls) == 2  # one call per layer, none per document
    cu, max_len, q_shape, k_shape = stand_in_kernel.calls[0]
    assert (cu, max_len, tuple(q_shape), tuple(k_shape)) == ([0, 23, 30, 70, 82], 64, (82, 4, 16), (82, 2, 16))
    _assert_same(kernel, _loss_and_grads(tiny_model, batch, use_kernel=False))


def test_attention_across_documents_would_be_caught(tiny_model, monkeypatch):
    """Guard for the test above: a kernel that ignores the document boundaries moves the loss by far more than
    the test's tolerance (on a random tiny model, whose logits are near zero, by ~6e-4 of it)."""
    tiny_model.config._attn_implementation = attention.register()
    batch = collate(packed_examples([23, 7, 40, 12]), True, PAD_ID)
    one_document = lambda q, k, v, cu, m, s: stand_in_kernel(q, k, v, cu[[0, -1]], m, s)  # noqa: E731
    monkeypatch.setattr(attention, "varlen_kernel", one_document)
    crossing = _loss_and_grads(tiny_model, batch, use_kernel=True)[0]
    assert abs(crossing - _loss_and_grads(tiny_model, batch, use_kernel=False)[0]) > 10 * LOSS_RTOL * crossing


def test_row_padded_to_64_gives_the_same_loss_and_gradients(tiny_model):
    tiny_model.config._attn_implementation = attention.register()
    examples = packed_examples([23, 7, 40, 12])
    plain, padded = collate(examples, True, PAD_ID), collate(examples, True, PAD_ID, pad_to_multiple=64)
    assert padded.input_ids.shape == (1, 128) and padded.doc_lens == [23, 7, 40, 12, 46]
    assert padded.num_pad_tokens == 46 and padded.num_tokens == plain.num_tokens == 82
    assert padded.position_ids[0, 82:].tolist() == list(range(46))
    assert padded.input_ids[0, 82:].eq(PAD_ID).all() and padded.target_ids[0, 82:].eq(-100).all()
    assert torch.equal(padded.trained_index, plain.trained_index)
    _assert_same(_loss_and_grads(tiny_model, padded, use_kernel=False), _loss_and_grads(tiny_model, plain, False))


def test_max_seqlen_buckets_are_powers_of_two():
    assert [max_seqlen_bucket(n) for n in (1, 16, 17, 64, 65, 1000, 1024, 1025)] == [16, 16, 32, 64, 128, 1024,
                                                                                    1024, 2048]


def _fake_varlen(params: str):
    """A varlen_attn with the installed-torch signature `params` that records its keyword arguments."""
    seen = {}
    namespace = {"seen": seen}
    exec(f"def varlen_attn(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, {params}):\n"
         "    seen.update(locals())\n    return query\n", namespace)
    return namespace["varlen_attn"], seen


@pytest.mark.parametrize("release, params", [
    ("2.10", "is_causal=False, return_aux=None"),
    ("2.13", "*, return_aux=None, scale=None, window_size=(-1, -1), enable_gqa=False"),
])
def test_varlen_signature_of_each_torch_release(monkeypatch, release, params):
    """2.10 takes is_causal and has no GQA or scale: keys are repeated per query group and the scale is folded
    into the query; 2.13 takes window_size=(-1, 0) for causal, enable_gqa and scale."""
    fake, seen = _fake_varlen(params)
    monkeypatch.setattr("torch.nn.attention.varlen.varlen_attn", fake)
    monkeypatch.setattr(attention, "_TORCH_VARLEN", attention._load_torch_varlen())
    q, k = torch.ones(10, 4, 16), torch.ones(10, 2, 16)
    out = attention.varlen_kernel(q, k, k, torch.tensor([0, 10], dtype=torch.int32), 16, 0.5)
    assert seen["max_q"] == seen["max_k"] == 16
    if release == "2.10":
        assert seen["is_causal"] is True and seen["key"].shape == (10, 4, 16)
        assert torch.equal(out, q * (0.5 / 16 ** -0.5))
    else:
        assert seen["window_size"] == (-1, 0) and seen["enable_gqa"] is True and seen["scale"] == 0.5
        assert seen["key"].shape == (10, 2, 16) and torch.equal(out, q)


def test_attention_path_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert attention.choose_attention(False, cpu, torch.float32).name == "padded SDPA"
    assert attention.choose_attention(True, cpu, torch.bfloat16).describe() == "per-document SDPA (packed rows on cpu)"
    assert "needs bf16 or fp16" in attention.choose_attention(True, cuda, torch.float32).reason
    assert "no attention dropout" in attention.choose_attention(True, cuda, torch.bfloat16, 0.1).reason


def test_a_gpu_run_picks_the_fast_path_by_itself(monkeypatch):
    """What `precision: auto`, packing and `compile: auto` resolve to on an Ampere-or-newer GPU with bf16, and
    the fallbacks on an older one; the CUDA queries are stood in, so this runs on CPU."""
    from sftkit.training.compile import choose_compile
    from sftkit.training.precision import choose_precision

    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "NVIDIA H100")
    monkeypatch.setattr(attention, "_TORCH_VARLEN", attention._TORCH_VARLEN or object())
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (9, 0))
    chosen = choose_precision("auto", cuda)
    assert chosen.compute_dtype == torch.bfloat16 and "supports bf16" in chosen.describe()
    assert attention.choose_attention(True, cuda, chosen.compute_dtype).describe() == (
        "varlen kernel (torch.nn.attention.varlen on CUDA)")
    assert choose_compile("auto", cuda).enabled
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (7, 5))
    assert attention.choose_attention(True, cuda, torch.float16).name == "per-document SDPA"
