"""Peak resident memory of LoRA training steps with torch's dropout against sftkit's MaskDropout.

    .venv/bin/python bench/dropout_memory.py torch|mask LAYERS fp32|bf16 STEPS

SmolLM2-135M's shape cut to LAYERS decoder layers (random weights; the default model's config), LoRA r=16 on
all linear layers with dropout 0.05, one packed micro-batch of 8 examples (945 tokens), one torch thread.
Prints, per step, the process's peak resident memory (VmHWM, reset before the step) in MiB. Run each variant
in its own process: the C allocator's state is what is measured.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _status_mib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024
    raise KeyError(key)


def main(variant: str, num_layers: int, precision: str, num_steps: int) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from sftkit.config import LoraSection, TrainSection
    from sftkit.data.batching import collate
    from sftkit.data.dataset import TokenizedExample
    from sftkit.models import resolve_model_path
    from sftkit.training import dropout
    from sftkit.training.loop import prepare_model
    from sftkit.training.loss import CausalLMLoss

    torch.set_num_threads(1)
    if variant == "torch":
        dropout.use_mask_dropout = lambda model: 0
    cfg = AutoConfig.from_pretrained(resolve_model_path("default"))
    cfg.num_hidden_layers = num_layers
    torch.manual_seed(0)
    model = prepare_model(AutoModelForCausalLM.from_config(cfg), TrainSection(), LoraSection(dropout=0.05))
    model.train()
    lengths = [130, 120, 110, 100, 140, 125, 115, 105]
    batch = collate([TokenizedExample(list(range(100, 100 + n)), [-100] * (n - 5) + list(range(95 + n, 100 + n)),
                                      "x", 1) for n in lengths], True, 2)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    for step in range(num_steps):
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        with autocast:
            loss = CausalLMLoss(model)(batch)
        loss.backward()
        model.zero_grad(set_to_none=True)
        print(f"{variant} {precision} layers={num_layers} step={step} peak_mib={_status_mib('VmHWM')}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
