"""`sftkit.training.dropout.MaskDropout`: bit for bit torch's dropout (outputs, gradients, random stream), a 1-byte mask."""

from __future__ import annotations

import pytest
import torch

from sftkit.config import LoraSection, TrainSection
from sftkit.training.dropout import MaskDropout, use_mask_dropout
from sftkit.training.loop import prepare_model


def _saved_bytes(fn) -> int:
    saved = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(saved.values())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(5,), (3, 7), (2, 33, 96)])
def test_same_output_gradient_and_random_stream_as_torch_dropout(dtype, shape):
    x = torch.randn(*shape, dtype=dtype, requires_grad=True)
    upstream = torch.randn(*shape, dtype=dtype)
    results = []
    for dropout in (torch.nn.Dropout(0.1), MaskDropout(0.1)):
        torch.manual_seed(7)
        out = dropout(x)
        out.backward(upstream)
        results.append((out.detach(), x.grad.clone(), torch.rand(4)))
        x.grad = None
    (out_a, grad_a, next_a), (out_b, grad_b, next_b) = results
    assert torch.equal(out_a, out_b) and torch.equal(grad_a, grad_b) and torch.equal(next_a, next_b)
    assert 0 < int((out_b == 0).sum()) < x.numel() or x.numel() < 20  # some elements dropped, not all


def test_saves_one_byte_per_element_where_torch_saves_the_float_noise():
    x = torch.randn(64, 96, requires_grad=True)
    assert _saved_bytes(lambda: torch.nn.Dropout(0.1)(x)) == 64 * 96 * 4
    assert _saved_bytes(lambda: MaskDropout(0.1)(x)) == 64 * 96


def test_eval_mode_and_edge_probabilities_fall_back_to_torch():
    x = torch.randn(8, 8)
    assert torch.equal(MaskDropout(0.1).eval()(x), x)
    assert torch.equal(MaskDropout(0.0)(x), x)
    assert torch.equal(MaskDropout(1.0)(x), torch.zeros_like(x))


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_lora_training_step_is_bit_identical_with_peft_dropout(tiny_model_dir, autocast):
    """The adapter sftkit trains (prepare_model: MaskDropout) and PEFT's own (torch.nn.Dropout): same loss and
    gradients, bit for bit."""
    from peft import LoraConfig, get_peft_model

    from sftkit.models import load_model

    ids = torch.tensor([list(range(10, 74))] * 2)
    runs = []
    for build in ("peft", "sftkit"):
        torch.manual_seed(3)
        base = load_model(str(tiny_model_dir))
        if build == "peft":
            model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.2,
                                                    target_modules="all-linear", task_type="CAUSAL_LM"))
        else:
            model = prepare_model(base, TrainSection(packing=False, gradient_checkpointing=False),
                                  LoraSection(r=8, alpha=16, dropout=0.2, target_modules="all-linear"))
        model.train()
        for module in model.modules():  # LoRA B starts at zero; give it values so dropout reaches the loss
            if hasattr(module, "lora_B"):
                torch.nn.init.normal_(module.lora_B["default"].weight, std=0.02)
        torch.manual_seed(11)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        kinds = {type(m).__name__ for m in model.modules() if isinstance(m, torch.nn.Dropout)}
        runs.append((loss.detach(), grads, kinds))
    (loss_a, grads_a, kinds_a), (loss_b, grads_b, kinds_b) = runs
    assert kinds_a == {"Dropout"} and kinds_b == {"MaskDropout"}
    assert torch.equal(loss_a, loss_b)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) == 2 * 7 * 2  # A and B, 7 matmuls, 2 layers
    assert all(torch.equal(grads_a[n], grads_b[n]) for n in grads_a)


def test_use_mask_dropout_replaces_only_plain_lora_dropouts(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    from sftkit.models import load_model

    model = get_peft_model(load_model(str(tiny_model_dir)), LoraConfig(r=4, lora_dropout=0.1,
                                                                       target_modules="all-linear"))
    assert use_mask_dropout(model) == 7 * 2
    assert use_mask_dropout(model) == 0  # already replaced
    without = get_peft_model(load_model(str(tiny_model_dir)), LoraConfig(r=4, lora_dropout=0.0,
                                                                         target_modules="all-linear"))
    assert use_mask_dropout(without) == 0  # PEFT uses Identity when dropout is 0
