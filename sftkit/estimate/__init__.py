"""What a training run will cost, before it runs: parameters, tokens, FLOPs, memory and time per device.

Parameters come from the model built on the meta device (no weights loaded), with the configured LoRA
adapter applied. Tokens come from the tokenised data and the recipe's own step order, so the number of
steps and the largest micro-batch are exact. FLOPs are counted per matmul (decoder, attention per example,
output head at trained positions only, as sftkit computes it). Time on this CPU is measured, not assumed:
one decoder layer of the real shape runs forward and backward on a micro-batch like the run's, plus the
output head and one optimizer step, and the run's time is scaled from that. Time on GPUs is FLOPs over the
device's dense bf16 peak times an assumed utilisation (MFU), stated in the result.
"""

from __future__ import annotations

import math
import random

import torch

from sftkit.recipes.sft_config import SFTConfig
from sftkit.data.batching import epoch_order, split_step, step_indices, steps_per_epoch
from sftkit.estimate.cpu import measure_cpu, process_rss_bytes
from sftkit.training.loss import CHUNK_TOKENS
from sftkit.training.precision import choose_precision

# Dense bf16 peak (no sparsity), memory, and an on-demand price per hour that is only a default: pass your own.
DEVICES = {
    "H100": {"peak_tflops": 989.0, "memory_gb": 80, "price_per_hour": 2.99},
    "A100": {"peak_tflops": 312.0, "memory_gb": 80, "price_per_hour": 1.79},
    "L4": {"peak_tflops": 121.0, "memory_gb": 24, "price_per_hour": 0.80},
}
GPU_MFU = 0.35  # assumed utilisation on GPUs: the measured anchor is 23-37% on one H100 (docs/benchmarks.md)
# Saved activations per token per decoder layer, in elements, for a Llama-style layer (d: hidden, i: MLP
# width, kv: key/value width, r: LoRA rank), counted with saved-tensor hooks on SmolLM2-135M (packed rows,
# SDPA): every frozen matmul saves nothing for LoRA, dropout > 0 gives every adapted matmul its own copy.
ACTIVATION_ELEMENTS = {
    "full": lambda d, i, kv, r: 9 * d + 2 * kv + 4 * i,
    "lora": lambda d, i, kv, r: 7 * d + 2 * kv + 4 * i + 7 * r,
    "lora_dropout": lambda d, i, kv, r: 10 * d + 2 * kv + 4 * i + 7 * r,
}
# With LoRA dropout, also one byte per element of every adapted matmul's input (q, k, v, o, gate, up: d;
# down: i): the boolean masks sftkit.training.dropout.MaskDropout keeps for backward.
DROPOUT_MASK_BYTES = lambda d, i: 6 * d + i  # noqa: E731
# Resident memory per live activation byte on CPU: glibc keeps freed temporaries (norms, rotary, dropout
# results) in its heap between the saved activations. Measured on this CPU with SmolLM2-135M (docs).
CPU_ALLOCATOR_FACTOR = 1.9
GPU_ALLOCATOR_FACTOR = 1.2  # the CUDA caching allocator's fragmentation, assumed
LOGIT_COPIES = 3  # logits, their softmax and its gradient for one checkpointed chunk of the loss


def _model_shape(config: SFTConfig) -> dict:
    """Architecture numbers and parameter counts (total, trainable) from the meta-device model."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from sftkit.models import apply_lora, count_parameters, resolve_model_path

    cfg = AutoConfig.from_pretrained(resolve_model_path(config.model.name),
                                     trust_remote_code=config.model.trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, trust_remote_code=config.model.trust_remote_code)
        layer_params = sum(p.numel() for p in model.get_decoder().layers[0].parameters() if p.ndim == 2)
        if config.train.method in ("lora", "qlora"):
            model = apply_lora(model, config.lora)
    trainable, total = count_parameters(model)
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return {"config": cfg, "layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size,
            "intermediate": cfg.intermediate_size, "heads": heads, "head_dim": head_dim,
            "kv_width": getattr(cfg, "num_key_value_heads", heads) * head_dim, "vocab": cfg.vocab_size,
            "layer_matmul_params": layer_params, "total_params": total, "trainable_params": trainable}


def _load_examples(config: SFTConfig):
    """Train and validation examples tokenised as the recipe does (split, subsample, replay, length policy)."""
    from sftkit.data.dataset import DataReport, load_conversations, split_indices, tokenize_examples
    from sftkit.models import load_tokenizer

    d, seed = config.data, config.train.seed
    from sftkit.data.chat_templates import use_chat_template

    tokenizer = load_tokenizer(config.model.name, config.model.trust_remote_code)
    use_chat_template(tokenizer, config.model.chat_template)
    report = DataReport()
    examples, _ = load_conversations(d.train_path, d.format, d.on_bad_row, report)
    train_idx, val_idx, _ = split_indices(len(examples), 0.0 if d.val_path else d.val_fraction,
                                          0.0 if d.test_path else d.test_fraction, seed)
    train = [examples[i] for i in train_idx]
    val = load_conversations(d.val_path, d.format, d.on_bad_row, report)[0] if d.val_path else [
        examples[i] for i in val_idx]
    if d.max_examples and len(train) > d.max_examples:
        train = random.Random(seed).sample(train, d.max_examples)
    if d.replay_path and d.replay_fraction > 0:
        replay, _ = load_conversations(d.replay_path, "auto", d.on_bad_row, report)
        want = round(len(train) * d.replay_fraction / (1 - d.replay_fraction))
        train = train + random.Random(seed + 1).sample(replay, min(want, len(replay)))
    args = (d.max_length, d.overlong, d.train_on, report)
    labels = {"train_on_reasoning": d.train_on_reasoning, "train_on_tool_results": d.train_on_tool_results}
    return tokenize_examples(tokenizer, train, *args, **labels)[0], tokenize_examples(tokenizer, val, *args, **labels)[0]


def _schedule(config: SFTConfig, train, world_size: int) -> dict:
    """Tokens, trained tokens and padding over the run's steps, and its largest micro-batch, in recipe order."""
    t = config.train
    per_step = t.micro_batch_size * t.grad_accum_steps * world_size
    epoch_steps = steps_per_epoch(len(train), per_step)
    total_steps = t.max_steps or max(1, math.ceil(t.num_epochs * epoch_steps))
    tokens = trained = positions = squares = most_trained = 0
    largest, largest_lens, order, order_epoch = 0, [], [], None
    for step in range(total_steps):
        epoch, in_epoch = divmod(step, epoch_steps)
        if epoch != order_epoch:
            order, order_epoch = epoch_order(len(train), t.seed, epoch), epoch
        for micro in split_step(step_indices(order, in_epoch, per_step), t.micro_batch_size, 1, 0):
            lens = [train[i].num_tokens for i in micro]
            width = sum(lens) if t.packing else max(lens) * len(lens)
            tokens += sum(lens)
            squares += sum(n * n for n in lens) if t.packing else max(lens) ** 2 * len(lens)
            positions += width
            micro_trained = sum(train[i].num_trained_tokens - (train[i].labels[0] != -100) for i in micro)
            trained += micro_trained
            most_trained = max(most_trained, micro_trained)
            if width > largest:
                largest, largest_lens = width, lens
    return {"total_steps": total_steps, "steps_per_epoch": epoch_steps, "examples_per_step": per_step,
            "tokens": tokens, "trained_tokens": trained, "positions": positions, "sum_squared_lengths": squares,
            "largest_micro_batch_tokens": largest, "largest_micro_batch_lengths": largest_lens,
            "most_trained_in_micro_batch": most_trained}


def _flops(shape: dict, config: SFTConfig, sched: dict) -> float:
    """Training FLOPs of the run, matmuls only (2 per multiply-add), on the positions actually computed."""
    layers = shape["layers"]
    lora_params = shape["trainable_params"] if config.train.method in ("lora", "qlora") else 0
    forward = 2 * (shape["layer_matmul_params"] * layers + lora_params) * sched["positions"]
    forward += 2 * shape["heads"] * shape["head_dim"] * layers * sched["sum_squared_lengths"]  # causal QK^T, AV
    head = 2 * shape["vocab"] * shape["hidden"] * sched["trained_tokens"]
    # Backward: input gradients (1x forward) everywhere, weight gradients (1x) only where weights train; LoRA
    # adapters are small, so a LoRA backward is ~1x. Checkpointing recomputes the decoder forward once, the
    # loss always recomputes the output head once (checkpointed chunks).
    backward = forward * (2 if config.train.method == "full" else 1)
    recompute = forward if config.train.gradient_checkpointing else 0
    return forward + backward + recompute + head * (4 if config.train.method == "full" else 3)


def _memory(shape: dict, config: SFTConfig, sched: dict, bytes_per: int, allocator_factor: float) -> dict:
    """Bytes held at the peak of a step: weights, gradients, AdamW state, saved activations, one loss chunk."""
    t = config.train
    kind = "full" if t.method == "full" else ("lora_dropout" if config.lora.dropout > 0 else "lora")
    per_token = ACTIVATION_ELEMENTS[kind](shape["hidden"], shape["intermediate"], shape["kv_width"], config.lora.r)
    per_token_bytes = per_token * bytes_per
    if kind == "lora_dropout":
        per_token_bytes += DROPOUT_MASK_BYTES(shape["hidden"], shape["intermediate"])
    width, layers = sched["largest_micro_batch_tokens"], shape["layers"]
    if t.gradient_checkpointing:  # every layer's input, plus one layer's activations during its backward
        activation_bytes = width * (layers * shape["hidden"] * bytes_per + per_token_bytes)
    else:
        activation_bytes = width * layers * per_token_bytes
    return {"weights": shape["total_params"] * bytes_per,
            "gradients": shape["trainable_params"] * bytes_per,
            "optimizer": 2 * shape["trainable_params"] * bytes_per,
            "activations": activation_bytes * allocator_factor,
            "logits": min(sched["most_trained_in_micro_batch"], CHUNK_TOKENS) * shape["vocab"] * 4 * LOGIT_COPIES}


def _evaluations(config: SFTConfig, total_steps: int) -> int:
    """Validation passes the recipe makes: before training, every eval_every steps, and at the last step."""
    every = config.train.eval_every
    return 1 + total_steps // every + (1 if total_steps % every else 0)


def estimate_run(config: SFTConfig, train_examples=None, val_examples=None, *, world_size: int = 1,
                 prices: dict[str, float] | None = None, gpu_mfu: float = GPU_MFU, measure: bool = True) -> dict:
    """Estimate a run of `config` before training.

    Args:
        train_examples, val_examples: the run's tokenised examples (`TokenizedExample`); loaded and tokenised
            from the config as the recipe does when not given.
        world_size: processes training together (each sees micro_batch_size examples per micro-batch); GPU
            times are per device, one device per process. The CPU time is for the whole run on this machine.
        prices: price per hour by device name (`H100`, `A100`, `L4`, `cpu`), overriding the defaults.
        gpu_mfu: assumed model-FLOPs utilisation on GPUs.
        measure: time one decoder layer on this CPU (a few seconds) to estimate CPU time; call it before the
            model is loaded, since this process's resident memory is counted as the runtime's.

    Returns a JSON-serialisable dict: parameters, data, flops, memory_mb (weights, gradients, optimizer,
    activations, logits, runtime, total), time (per device: seconds, hours, cost, basis, fits).
    """
    runtime_bytes = process_rss_bytes()
    if train_examples is None:
        train_examples, val_examples = _load_examples(config)
    val_examples = val_examples or []
    t, shape = config.train, _model_shape(config)
    sched = _schedule(config, train_examples, world_size)
    flops = _flops(shape, config, sched)
    cpu_weight_bytes = choose_precision(t.precision, torch.device("cpu")).weights_dtype.itemsize  # fp32 under autocast
    cpu_memory = _memory(shape, config, sched, cpu_weight_bytes, CPU_ALLOCATOR_FACTOR)
    memory_mb = {k: round(v / 2**20) for k, v in {**cpu_memory, "runtime": runtime_bytes}.items()}
    memory_mb["total"] = sum(memory_mb.values())
    gpu_memory = sum(_memory(shape, config, sched, 4 if t.precision == "fp32" else 2, GPU_ALLOCATOR_FACTOR).values())

    evaluations = _evaluations(config, sched["total_steps"]) if val_examples else 0
    val_positions = sum(x.num_tokens for x in val_examples) * evaluations
    prices = {**{k: v["price_per_hour"] for k, v in DEVICES.items()}, "cpu": 0.0, **(prices or {})}
    times = {}
    for name, device in DEVICES.items():
        flops_per_device = (flops + 2 * shape["total_params"] * val_positions) / world_size
        seconds = flops_per_device / (device["peak_tflops"] * 1e12 * gpu_mfu)
        times[name] = {"seconds": seconds, "basis": f"FLOPs / ({device['peak_tflops']:g} TFLOP/s x MFU {gpu_mfu})",
                       "fits": gpu_memory < device["memory_gb"] * 1e9 * 0.9}
    if measure:
        trained_fraction = sched["trained_tokens"] / max(1, sched["tokens"])
        rates = measure_cpu(shape["config"], config, sched["largest_micro_batch_lengths"], trained_fraction)
        layers = shape["layers"]
        train_seconds = (sched["positions"] * layers * rates["seconds_per_position_per_layer"]
                         + sched["trained_tokens"] * rates["head_seconds_per_trained_token"]
                         + sched["total_steps"] * shape["trainable_params"] * rates["optimizer_seconds_per_param"])
        times["cpu"] = {"seconds": train_seconds + val_positions * layers
                        * rates["forward_seconds_per_position_per_layer"], "train_seconds": train_seconds,
                        "basis": rates["basis"], "fits": memory_mb["total"] * 2**20 < _physical_memory_bytes()}
    for name, row in times.items():
        row["hours"] = row["seconds"] / 3600
        row["price_per_hour"] = prices.get(name, 0.0)
        row["cost"] = row["hours"] * row["price_per_hour"]
    width = sched["largest_micro_batch_tokens"]
    return {
        "model": config.model.name, "method": t.method,
        "parameters": {"total": shape["total_params"], "trainable": shape["trainable_params"]},
        "data": {"train_examples": len(train_examples), "val_examples": len(val_examples),
                 "val_tokens": sum(x.num_tokens for x in val_examples),
                 "tokens_per_epoch": sum(x.num_tokens for x in train_examples),
                 "trained_tokens_per_epoch": sum(x.num_trained_tokens for x in train_examples),
                 "run_tokens": sched["tokens"], "run_trained_tokens": sched["trained_tokens"],
                 "padding_fraction": 1 - sched["tokens"] / max(1, sched["positions"]),
                 "largest_micro_batch_tokens": width},
        "steps": {"total": sched["total_steps"], "per_epoch": sched["steps_per_epoch"],
                  "examples_per_step": sched["examples_per_step"], "evaluations": evaluations},
        "flops": {"train": flops, "per_token": flops / max(1, sched["tokens"]),
                  "six_n_convention": 6 * shape["total_params"] * sched["tokens"]},
        "memory_mb": memory_mb, "gpu_memory_gb": round(gpu_memory / 1e9, 2),
        "time": times, "assumptions": {"gpu_mfu": gpu_mfu, "cpu_allocator_factor": CPU_ALLOCATOR_FACTOR,
                                       "prices_per_hour": prices},
    }


def parse_prices(items: list[str] | None) -> dict[str, float]:
    """`["H100=2.5", "cpu=0.1"]` -> {"H100": 2.5, "cpu": 0.1}; a bad item raises UserError."""
    from sftkit.errors import UserError

    known = {name.lower(): name for name in [*DEVICES, "cpu"]}
    prices = {}
    for item in items or []:
        name, _, value = item.partition("=")
        try:
            price = float(value)
        except ValueError:
            price = -1.0
        if name.strip().lower() not in known or price < 0:
            raise UserError(f"--price {item!r}: use DEVICE=USD_PER_HOUR with DEVICE one of "
                            f"{', '.join(known.values())}, e.g. --price H100=2.5")
        prices[known[name.strip().lower()]] = price
    return prices


def print_estimate(result: dict, console) -> None:
    """The estimate as two rich tables: what the run is, and time/cost per device."""
    from rich.table import Table

    d, m, p = result["data"], result["memory_mb"], result["parameters"]
    table = Table(title=f"sftkit estimate ({result['method']}, {result['model']})", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    share = 100 * p["trainable"] / p["total"]
    table.add_row("parameters", f"{p['trainable']:,} trainable of {p['total']:,} ({share:.2f}%)")
    table.add_row("examples", f"train {d['train_examples']:,}, val {d['val_examples']:,}")
    table.add_row("tokens per epoch", f"{d['tokens_per_epoch']:,} ({d['trained_tokens_per_epoch']:,} trained)")
    table.add_row("run", f"{result['steps']['total']:,} steps, {d['run_tokens']:,} tokens, padding "
                  f"{d['padding_fraction']:.1%}, largest micro-batch {d['largest_micro_batch_tokens']:,} tokens")
    table.add_row("training FLOPs", f"{result['flops']['train']:.3g} ({result['flops']['per_token']:.3g} per token)")
    table.add_row("memory on this CPU (MiB)", ", ".join(f"{k} {v:,}" for k, v in m.items()))
    table.add_row("memory on a GPU", f"{result['gpu_memory_gb']} GB")
    console.print(table)
    devices = Table(title="time and cost")
    for column in ("device", "time", "price/h", "cost", "fits", "basis"):
        devices.add_column(column, justify="left" if column in ("device", "basis") else "right")
    for name, row in result["time"].items():
        cost = f"${row['cost']:.2f}" if row["cost"] >= 0.01 or not row["cost"] else f"${row['cost']:.1e}"
        devices.add_row(name, _duration(row["seconds"]), f"${row['price_per_hour']:.2f}", cost,
                        "yes" if row["fits"] else "no", row["basis"])
    console.print(devices)


def _physical_memory_bytes() -> int:
    import os

    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
