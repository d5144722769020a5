"""Regional compile: each decoder layer compiled (backend aot_eager: dynamo and autograd tracing without
inductor's code generation, so the test runs in seconds of compile, not minutes) gives eager's losses and
gradients over packed batches of different lengths, compiling nothing new after the first batch."""

from __future__ import annotations

import pytest
import torch

from sftkit.config import LoraSection
from sftkit.data.batching import collate
from sftkit.models import apply_lora
from sftkit.training.attention import register
from sftkit.training.compile import PAD_MULTIPLE, CompilePlan, choose_compile, compile_counts, compile_layers
from sftkit.training.loss import CausalLMLoss
from tests.helpers import make_tiny_model
from tests.recipes.trajectory import GRAD_RTOL, LOSS_RTOL
from tests.helpers import packed_examples


def _lora_model():
    model = make_tiny_model()
    model.config._attn_implementation = register()
    return apply_lora(model, LoraSection(dropout=0.0))


@pytest.mark.slow
def test_compiled_layers_match_eager_over_lengths_without_recompiling():
    eager, compiled = _lora_model(), _lora_model()
    with torch.no_grad():  # B is zero at init: give the adapter a gradient path through both of its factors
        for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
            if "lora_B" in name:
                p.normal_(0, 0.1)
            q.copy_(p)
    assert compile_layers(compiled, CompilePlan(True, "test", "aot_eager")) == 2
    lengths = [[23, 7, 40], [90, 15], [5, 6, 7, 8, 9], [130, 30, 61], [44]]
    counts = []
    for doc_lengths in lengths:
        batch = collate(packed_examples(doc_lengths), True, 2, pad_to_multiple=PAD_MULTIPLE)
        assert batch.input_ids.shape[1] % PAD_MULTIPLE == 0
        results = []
        for model in (eager, compiled):
            model.zero_grad(set_to_none=True)
            loss = CausalLMLoss(model)(batch)
            loss.backward()
            results.append((float(loss.detach()), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}))
        (loss_e, grads_e), (loss_c, grads_c) = results
        assert loss_c == pytest.approx(loss_e, rel=LOSS_RTOL, abs=0)
        for name, g in grads_e.items():
            assert (grads_c[name] - g).abs().max() <= GRAD_RTOL * g.abs().max(), name
        counts.append(compile_counts())
    assert counts[0]["graphs_compiled"] > 0  # the layers were compiled, not silently left eager
    # The first batch compiles every graph (layer 0 sees inputs without gradients, layer 1 with: a recompile for
    # such guards). Later batches reuse them whatever their length (64 to 256: the length is dynamic) and number
    # of documents, but for at most one recompile: dynamo's "duck sizing" first assumes that sizes equal in the
    # first batch (here 4 documents, the pad document included, and 4 heads) stay equal, and relaxes that once.
    assert counts[-1]["graphs_compiled"] - counts[0]["graphs_compiled"] <= 1
    assert counts[-1] == counts[2]


def test_auto_compiles_on_cuda_only():
    assert choose_compile("auto", torch.device("cuda", 0)).enabled
    assert not choose_compile("auto", torch.device("cpu")).enabled
    assert not choose_compile("auto", torch.device("cuda", 0), method="qlora").enabled
    assert choose_compile("on", torch.device("cpu")).pad_to_multiple == PAD_MULTIPLE
    assert choose_compile("off", torch.device("cuda", 0)).pad_to_multiple == 1
