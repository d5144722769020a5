"""Which floating-point precision a run computes in, and why: `train.precision` resolved against the device.

    auto on CUDA          bf16 weights and compute when the GPU supports bf16, else fp32
    auto on CPU           bf16 autocast with fp32 weights when the CPU multiplies bf16 natively (AMX, AVX512-BF16
                          or Arm's BF16 extension), else fp32
    bf16 on CPU           the same autocast (asked for: used even where bf16 is emulated)
    fp32                  fp32 everywhere

Under CPU autocast the weights, their gradients and the optimizer state stay fp32 (master weights); matrix
products run in bf16 with fp32 accumulation. The loss and its vocabulary chunks are computed in fp32 in every
mode (sftkit.training.loss). Evaluation and generation resolve `auto` the same way (`inference_dtype`), but
load the weights in bf16 instead of casting them at every product: nothing is updated there.
"""

from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch


@lru_cache(maxsize=1)
def cpu_bf16_feature() -> str | None:
    """The CPU feature that multiplies bf16 natively (`AMX`, `AVX512-BF16`, `ARM-BF16`), or None.

    torch's own CPU probe (cpuinfo) is asked first; /proc/cpuinfo's flags are the fallback where torch lacks
    the private probes.
    """
    probe = getattr(torch, "cpu", None)
    try:
        if probe._is_amx_tile_supported():
            return "AMX"
        if probe._is_avx512_bf16_supported():
            return "AVX512-BF16"
        if platform.machine() not in ("aarch64", "arm64"):
            return None
    except AttributeError:
        pass
    try:
        return feature_from_cpuinfo(Path("/proc/cpuinfo").read_text(), platform.machine())
    except OSError:
        return None


def feature_from_cpuinfo(text: str, machine: str) -> str | None:
    """The native bf16 feature named by /proc/cpuinfo's `flags` (x86) or `Features` (Arm) lines, or None."""
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    if machine in ("aarch64", "arm64") and "bf16" in flags:
        return "ARM-BF16"
    return None


@dataclass(frozen=True)
class Precision:
    """How a run computes: the dtype weights are loaded in, the dtype products run in, and why."""

    weights_dtype: torch.dtype
    compute_dtype: torch.dtype
    device_type: str
    reason: str

    @property
    def autocast(self) -> bool:
        """Products in a narrower dtype than the weights (CPU bf16 mixed precision)."""
        return self.compute_dtype != self.weights_dtype

    @property
    def name(self) -> str:
        """`fp32`, `bf16` (weights and products) or `bf16 autocast, fp32 weights`."""
        short = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
        if self.autocast:
            return f"{short[self.compute_dtype]} autocast, {short[self.weights_dtype]} weights"
        return short[self.weights_dtype]

    def context(self):
        """The context forward passes run in (autocast, or nothing)."""
        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.compute_dtype)

    def describe(self) -> str:
        return f"{self.name} ({self.reason})"


def choose_precision(precision: str, device: torch.device) -> Precision:
    """Resolve `train.precision` (auto | fp32 | bf16) for `device`; see the module docstring."""
    fp32, bf16 = torch.float32, torch.bfloat16
    if precision == "fp32":
        return Precision(fp32, fp32, device.type, "train.precision: fp32")
    if device.type == "cuda":
        if precision == "bf16":
            return Precision(bf16, bf16, "cuda", "train.precision: bf16")
        if torch.cuda.is_bf16_supported():
            return Precision(bf16, bf16, "cuda", f"auto: {torch.cuda.get_device_name(device)} supports bf16")
        return Precision(fp32, fp32, "cuda", "auto: this GPU has no bf16")
    feature = cpu_bf16_feature()
    if precision == "bf16":
        why = f"native {feature}" if feature else "emulated: this CPU has no native bf16, expect it to be slow"
        return Precision(fp32, bf16, device.type, f"train.precision: bf16, {why}")
    if feature:
        return Precision(fp32, bf16, device.type, f"auto: this CPU has {feature}")
    return Precision(fp32, fp32, device.type, "auto: this CPU has no native bf16 (AMX or AVX512-BF16)")


def inference_dtype(name: str, device_type: str = "cpu") -> torch.dtype:
    """The dtype evaluation and generation load a model in: `float32`, `bfloat16`, `float16`, or `auto`
    (bf16 where training's `auto` would compute in bf16 on this device, else fp32)."""
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name == "auto":
        return choose_precision("auto", torch.device(device_type)).compute_dtype
    return dtypes[name]
