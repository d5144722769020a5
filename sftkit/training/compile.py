"""Regional compile (`train.compile`): each decoder layer compiled on its own with `torch.compile`.

Compiling layer by layer instead of the whole model keeps compile time to one layer's worth (every layer runs
the same code, so dynamo compiles it once and reuses it with each layer's weights), and leaves the embedding,
the chunked loss and PEFT's wrappers eager. The sequence length is dynamic, and packed rows are padded to a
multiple of PAD_MULTIPLE tokens (sftkit.data.batching.collate) so that lengths repeat; per-document SDPA stays
outside the graphs (its list of lengths would specialise them), the varlen kernel is traced as a custom op.

Layers are compiled after LoRA is applied (the graph includes the adapters) and before FSDP wraps them.

`auto` compiles on CUDA only. On this project's CPU machines inductor took minutes to compile one layer's
forward and backward while the quickstart's whole training takes about three (docs/benchmarks.md, "Regional
compile on CPU"), so a CPU run never earns the compile time back within a typical run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sftkit.models import unwrap

PAD_MULTIPLE = 64


@dataclass(frozen=True)
class CompilePlan:
    """Whether the decoder layers are compiled, with which backend, and why."""

    enabled: bool
    reason: str
    backend: str = "inductor"

    @property
    def pad_to_multiple(self) -> int:
        """What packed rows are padded to: shapes repeat only for compiled layers."""
        return PAD_MULTIPLE if self.enabled else 1

    def describe(self) -> str:
        if not self.enabled:
            return f"off ({self.reason})"
        return f"each decoder layer, {self.backend}, dynamic length, rows padded to x{PAD_MULTIPLE} ({self.reason})"


def choose_compile(setting: str, device: torch.device, method: str = "lora", backend: str = "inductor"
                   ) -> CompilePlan:
    """Resolve `train.compile` (auto | on | off) for `device`; see the module docstring for `auto`."""
    if setting == "off":
        return CompilePlan(False, "train.compile: off")
    if setting == "on":
        return CompilePlan(True, "train.compile: on", backend)
    if method == "qlora":
        return CompilePlan(False, "auto: bitsandbytes' 4-bit layers are left eager")
    if device.type == "cuda":
        return CompilePlan(True, "auto: on CUDA", backend)
    return CompilePlan(False, f"auto: not on {device.type}, where compiling takes longer than it saves")


def compile_layers(model: torch.nn.Module, plan: CompilePlan) -> int:
    """Compile each decoder layer of `model` in place (`nn.Module.compile`); returns how many."""
    if not plan.enabled:
        return 0
    _raise_metrics_limit()
    global _baseline
    _baseline = _process_counts()
    layers = unwrap(model).get_decoder().layers
    for layer in layers:
        layer.compile(backend=plan.backend, dynamic=True)
    return len(layers)


def _raise_metrics_limit() -> None:
    try:
        from torch._dynamo.utils import set_compilation_metrics_limit

        set_compilation_metrics_limit(100_000)  # keeps every compilation's record, so none is missed in counts
    except ImportError:
        pass


_baseline = {"graphs_compiled": 0, "recompiles": 0}


def _process_counts() -> dict[str, int | None]:
    try:
        from torch._dynamo.utils import get_compilation_metrics
    except ImportError:
        return {"graphs_compiled": None, "recompiles": None}
    records = list(get_compilation_metrics())
    return {"graphs_compiled": len(records),
            "recompiles": sum(1 for r in records if getattr(r, "recompile_reason", None))}


def compile_counts() -> dict[str, int | None]:
    """Graphs compiled since `compile_layers`, and how many of them were recompilations (a guard failed: a new
    shape or type came in). From dynamo's compilation records; None where this torch has none."""
    now = _process_counts()
    return {k: None if v is None else v - (_baseline[k] or 0) for k, v in now.items()}
