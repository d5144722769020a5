"""Optimizer groups and the learning-rate schedule shared by the SFT and DPO recipes."""

from __future__ import annotations

import pytest
import torch

from sftkit.recipes.sft_config import SFTConfig
from sftkit.training.optim import build_optimizer, build_scheduler, lr_factor, param_groups, restore_peak_lr


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(4, 4)
        self.input_layernorm = torch.nn.LayerNorm(4)
        self.frozen = torch.nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def test_weight_decay_only_on_trainable_matrices():
    block = Block()
    decay, no_decay = param_groups(block, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [id(p) for p in decay["params"]] == [id(block.proj.weight)]
    assert [id(p) for p in no_decay["params"]] == [id(block.proj.bias), id(block.input_layernorm.weight),
                                                   id(block.input_layernorm.bias)]


def test_fused_and_unfused_adamw_take_the_same_step():
    train = SFTConfig.model_validate({"data": {"train_path": "x.jsonl"}, "train": {"weight_decay": 0.1}}).train
    torch.manual_seed(0)
    a, b = Block(), Block()
    b.load_state_dict(a.state_dict())
    for model, fused in ((a, True), (b, False)):
        opt = build_optimizer(model, train, fused=fused)
        for _ in range(3):
            model.proj(model.input_layernorm(torch.ones(2, 4))).pow(2).sum().backward()
            opt.step()
            opt.zero_grad()
    # Safe to compare weights after AdamW here: step 1's gradients are bit-identical (same model, same ops), and no
    # gradient is rounding noise near 0 (the norm's weight and the first proj.weight gradients are exact zeros in
    # both), so the kernels can differ only by float32 rounding of each update: assert_close's float32 default.
    torch.testing.assert_close(a.proj.weight, b.proj.weight)
    assert not torch.equal(a.frozen.weight, a.proj.weight)


def test_lr_schedule_shape():
    assert lr_factor(0, 10, 100, "cosine", 0.0) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, "cosine", 0.0) == pytest.approx(1.0)
    assert lr_factor(10, 10, 100, "cosine", 0.0) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100, "cosine", 0.0) == pytest.approx(0.5)
    assert lr_factor(100, 10, 100, "linear", 0.1) == pytest.approx(0.1)
    assert lr_factor(70, 10, 100, "constant", 0.1) == 1.0


def test_restore_peak_lr_uses_the_new_config_after_resume():
    raw = {"data": {"train_path": "x.jsonl"}, "train": {"learning_rate": 1e-3, "lr_scheduler": "linear"}}
    old = SFTConfig.model_validate(raw).train
    model = Block()
    opt = build_optimizer(model, old, fused=False)
    sched = build_scheduler(opt, old, warmup_steps=0, total_steps=10)
    for _ in range(5):
        opt.step()
        sched.step()
    state = sched.state_dict()  # a checkpoint at step 5
    raw["train"]["learning_rate"] = 4e-3
    new = SFTConfig.model_validate(raw).train
    opt2 = build_optimizer(model, new, fused=False)
    sched2 = build_scheduler(opt2, new, 0, 10)
    sched2.load_state_dict(state)  # carries base_lrs of 1e-3
    restore_peak_lr(opt2, sched2, new, step=5, warmup_steps=0, total_steps=10)
    assert [g["lr"] for g in opt2.param_groups] == pytest.approx([2e-3, 2e-3])
    sched2.step()  # step 6 of 10, linear: 0.4 of the new peak
    assert sched2.get_last_lr() == pytest.approx([1.6e-3, 1.6e-3])
