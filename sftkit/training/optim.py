"""The optimizer and learning-rate schedule both recipes use: AdamW with weight decay on weight matrices only,
linear warmup, then cosine, linear or constant decay to a floor."""

from __future__ import annotations

import math

import torch


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters split into decayed (matrices) and undecayed (biases, norms) groups, in model order."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: torch.nn.Module, train, fused: bool = True) -> torch.optim.AdamW:
    """AdamW over `model`'s trainable parameters with `train`'s lr, betas and weight decay.

    fused: one kernel over all parameters, ~5x faster per step on CPU (docs/benchmarks.md); FSDP's DTensor
    parameters need fused=False.
    """
    return torch.optim.AdamW(param_groups(model, train.weight_decay), lr=train.learning_rate,
                             betas=(train.adam_beta1, train.adam_beta2), fused=fused)


def build_scheduler(optimizer: torch.optim.Optimizer, train, warmup_steps: int, total_steps: int):
    """LambdaLR following `lr_factor` for `train.lr_scheduler` and `train.min_lr_ratio`."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(
        s, warmup_steps, total_steps, train.lr_scheduler, train.min_lr_ratio))


def lr_factor(step: int, warmup_steps: int, total_steps: int, kind: str, min_ratio: float) -> float:
    """Multiplier of the peak LR after `step` optimizer steps: linear warmup, then decay to `min_ratio`."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if kind == "cosine" else 1 - progress
    return min_ratio + (1 - min_ratio) * shape


def restore_peak_lr(optimizer: torch.optim.Optimizer, scheduler, train, step: int, warmup_steps: int,
                    total_steps: int) -> None:
    """After loading a checkpoint: the scheduler state carries the old peak LR; the config in force now wins."""
    scheduler.base_lrs = [train.learning_rate] * len(optimizer.param_groups)
    for group in optimizer.param_groups:
        group["initial_lr"] = train.learning_rate
        group["lr"] = train.learning_rate * lr_factor(step, warmup_steps, total_steps, train.lr_scheduler,
                                                      train.min_lr_ratio)
