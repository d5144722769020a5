"""Measured CPU cost rates for `sftkit.estimate`: one decoder layer of the real shape, the output head, AdamW.

A whole step is too slow to time before a run, but its cost is (to within attention's small quadratic term)
linear in the number of layers and tokens: one layer, built from the model's config with random weights,
trained on a micro-batch shaped like the run's, gives seconds per token per layer under the same threads,
precision, attention path (packed or padded), LoRA wrapping and checkpointing as the run. The machine's
current load is part of what is measured, as it will be part of the run.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path


def process_rss_bytes() -> int:
    """This process's resident memory now (Python, torch and whatever is loaded so far)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * 4096
    except (OSError, IndexError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _best_seconds(fn, repeats: int) -> float:
    fn()  # first call: allocations, lazy initialisation
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _one_layer_model(model_config, config, dtype):
    import torch
    from transformers import AutoModelForCausalLM

    from sftkit.training.loop import prepare_model

    cfg = copy.deepcopy(model_config)
    cfg.num_hidden_layers = 1
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = cfg.layer_types[:1]
    cfg.vocab_size = 64  # the layer does not depend on it; the head is timed on its own
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation="sdpa",
                                             trust_remote_code=config.model.trust_remote_code)
    model = prepare_model(model, config.train, config.lora if config.train.method in ("lora", "qlora") else None)
    model.train()
    return model


def measure_cpu(model_config, config, lengths: list[int], trained_fraction: float, repeats: int = 2) -> dict:
    """Seconds per token position per layer (training and forward-only), per trained token in the output head,
    and per trainable parameter for clipping plus one AdamW step, measured on this machine now."""
    import torch

    from sftkit.models import unwrap
    from sftkit.training.loss import ce_sum
    from sftkit.training.precision import choose_precision

    if config.train.num_threads:  # as the recipe does, so the rate is the run's
        torch.set_num_threads(config.train.num_threads)
    precision = choose_precision(config.train.precision, torch.device("cpu"))  # as the run will compute
    dtype = precision.weights_dtype
    model = _one_layer_model(model_config, config, dtype)
    decoder = unwrap(model).get_decoder()
    hidden = model_config.hidden_size
    if config.train.packing:
        positions = sum(lengths)
        x = torch.randn(1, positions, hidden, dtype=dtype, requires_grad=True)
        kwargs = {"attention_mask": torch.ones((1, 1, 1, 1), dtype=torch.bool), "doc_lens": lengths,
                  "position_ids": torch.cat([torch.arange(n) for n in lengths])[None]}
    else:
        width = max(lengths)
        positions = width * len(lengths)
        x = torch.randn(len(lengths), width, hidden, dtype=dtype, requires_grad=True)
        mask = torch.zeros(len(lengths), width, dtype=torch.long)
        for row, n in enumerate(lengths):
            mask[row, :n] = 1
        kwargs = {"attention_mask": mask, "position_ids": torch.arange(width).expand(len(lengths), -1)}

    def layer_step():
        with precision.context():
            out = decoder(inputs_embeds=x, use_cache=False, **kwargs).last_hidden_state
        out.float().sum().backward()

    def layer_forward():
        with torch.no_grad(), precision.context():
            decoder(inputs_embeds=x, use_cache=False, **kwargs)

    layer_seconds = _best_seconds(layer_step, repeats)
    model.eval()
    forward_seconds = _best_seconds(layer_forward, repeats)

    num_trained = max(1, round(sum(lengths) * trained_fraction))
    head = torch.nn.Linear(hidden, model_config.vocab_size, bias=False, dtype=dtype)
    head.weight.requires_grad_(config.train.method == "full")  # LoRA leaves the (tied) head frozen
    h = torch.randn(num_trained, hidden, dtype=dtype, requires_grad=True)
    targets = torch.randint(0, model_config.vocab_size, (num_trained,))
    head_seconds = _best_seconds(lambda: ce_sum(h, head, targets).backward(), repeats)
    del head, h

    proxy = [torch.nn.Parameter(torch.randn(1024, 1024, dtype=dtype)) for _ in range(4)]
    grads = [torch.randn_like(p) for p in proxy]
    optimizer = torch.optim.AdamW(proxy, lr=1e-4)

    def optimizer_step():
        for p, g in zip(proxy, grads):
            p.grad = g  # what backward leaves behind
        torch.nn.utils.clip_grad_norm_(proxy, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    optimizer_seconds = _best_seconds(optimizer_step, repeats)
    num_proxy = sum(p.numel() for p in proxy)
    return {
        "seconds_per_position_per_layer": layer_seconds / positions,
        "forward_seconds_per_position_per_layer": forward_seconds / positions,
        "head_seconds_per_trained_token": head_seconds / num_trained,
        "optimizer_seconds_per_param": optimizer_seconds / num_proxy,
        "basis": f"measured here ({torch.get_num_threads()} threads, {precision.name}): one decoder layer forward+backward on "
                 f"{positions} positions in {layer_seconds * 1e3:.0f} ms, the output head on {num_trained} trained "
                 f"tokens in {head_seconds * 1e3:.0f} ms, clipping + AdamW on {num_proxy:,} parameters in "
                 f"{optimizer_seconds * 1e3:.0f} ms",
    }
