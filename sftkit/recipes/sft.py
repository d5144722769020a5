"""The SFT recipe as named phases over the shared runtime (sftkit/training/loop.py):

    setup_data -> setup_model -> [resume] -> initial validation -> loop of train_step (validate, checkpoint,
    stop early) -> export -> evaluation after training

Runs as one process or under torchrun (DDP; FSDP2 for full fine-tuning; gloo on CPU).

Loss normalisation (train_step): every micro-batch returns the *sum* of its token losses; it is divided by the
number of trained tokens of the whole optimizer step (all micro-batches of all processes), so micro-batch 8 x
accumulation 1, 2 x 4, and 2 processes x 4 x 1 give the same update.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sftkit.data.batching import MicroBatch, collate, to_device
from sftkit.data.chat_labels import IGNORE_INDEX
from sftkit.data.dataset import DataReport, Example, TokenizedExample, load_conversations, load_splits
from sftkit.data.dataset import tokenize_examples
from sftkit.config import to_yaml
from sftkit.errors import UserError
from sftkit.models import count_parameters, load_model, load_tokenizer, resolve_model_path
from sftkit.recipes.sft_config import SFTConfig
from sftkit.training import sharding
from sftkit.training.distributed import World, all_reduce_sum, barrier
from sftkit.training.compile import compile_counts, compile_layers
from sftkit.training.loop import ADAPTER_METHODS, ComputePlan, Runtime, prepare_model, start_process
from sftkit.training.loss import CausalLMLoss
from sftkit.training.metrics_log import MetricsLog
from sftkit.training.precision import choose_precision
from sftkit.training.reporter import Reporter
from sftkit.training.run_dir import describe_run, export_model, peak_memory_mb, release_freed_memory, write_json
from sftkit.training.state import TrainState


@dataclass
class SFTData:
    """The run's examples: raw splits (written to data/) and the tokenised train/val examples that train."""

    train: list[Example]
    replay: list[Example]
    val: list[Example]
    test: list[Example]
    train_tok: list[TokenizedExample]
    val_tok: list[TokenizedExample]
    num_replay_tok: int
    report: DataReport = field(default_factory=DataReport)


def train(config: SFTConfig, resume: bool = False, quiet: bool = False) -> dict:
    """Run one SFT training job and return its summary (also written to OUTPUT_DIR/summary.json)."""
    started = time.time()
    out_dir = Path(config.output_dir)
    world, report = start_process(config.train, out_dir, resume, "sftkit train", quiet)
    tokenizer = load_tokenizer(config.model.name, config.model.trust_remote_code)
    if config.model.chat_template:
        tokenizer.chat_template = config.model.chat_template
    data = setup_data(config, tokenizer, report)
    estimate = pre_run_estimate(config, data, world, report)
    release_freed_memory()  # the measurement's freed tensors would otherwise stay resident through training
    rt, num_params = setup_model(config, data, world, report)
    report.startup(startup_numbers(config, data, rt, num_params))
    if world.is_main:
        # replay rows get their own file: `compare` draws its few-shot examples from the task's train.jsonl
        describe_run(out_dir, to_yaml(config), tokenizer, {"train": _rows(data.train), "replay": _rows(data.replay),
                                                  "val": _rows(data.val), "test": _rows(data.test)},
                     data.report, optional=("replay",))

    state = (rt.resume(config.model_dump(mode="json")) if resume else None) or TrainState()
    metrics = MetricsLog(out_dir, world.is_main, resume_step=state.step or None)
    pad_id, pad_to = tokenizer.pad_token_id, rt.pad_to_multiple
    if state.initial_val_loss is None and data.val_tok:
        state.record_initial_validation({"loss": validate(rt, data.val_tok, pad_id)})
        metrics.log({"step": 0, "val_loss": state.initial_val_loss})
        rt.save_best()
        report.note(f"initial validation loss {state.initial_val_loss:.4f}")

    rt.module.train()
    report.start_loop(rt.schedule.total_steps, state.step)
    while state.step < rt.schedule.total_steps and not state.early_stopped:
        indices, micro = rt.micro_batches(state.step, len(data.train_tok))
        batches = [collate([data.train_tok[i] for i in mb], config.train.packing, pad_id, pad_to) if mb is not None
                   else no_target_batch(data.train_tok[indices[0]], config.train.packing, pad_id, pad_to)
                   for mb in micro]
        row = train_step(rt, state, batches)
        if rt.is_validation_step(state.step):
            row["val_loss"] = validate(rt, data.val_tok, pad_id) if data.val_tok else None
            if row["val_loss"] is not None and state.record_validation(
                    {"loss": row["val_loss"]}, config.train.min_delta, config.train.patience):
                rt.save_best()
            rt.module.train()
        rt.end_step(state, row, metrics, config.model_dump(mode="json"))
    report.end_loop()

    summary = finish(config, data, rt, state, tokenizer, num_params, estimate, started)
    rt.end_run(summary, metrics)
    if world.is_main and (config.eval.after_training or config.eval.safety):
        summary = evaluate_after_training(out_dir, config, summary, report)
    return summary


def setup_data(config: SFTConfig, tokenizer, report: Reporter) -> SFTData:
    """Read and split the data (seeded), mix in replay rows, tokenise with assistant-only labels."""
    data_cfg, seed = config.data, config.train.seed
    data_report = DataReport()

    def load(spec):
        return load_conversations(spec, data_cfg.format, data_cfg.on_bad_row, data_report)[0]

    train_ex, val_ex, test_ex = load_splits(data_cfg, seed, load, "sftkit.train")
    replay = []
    if data_cfg.replay_path and data_cfg.replay_fraction > 0:
        pool, _ = load_conversations(data_cfg.replay_path, "auto", data_cfg.on_bad_row, data_report)
        want = round(len(train_ex) * data_cfg.replay_fraction / (1 - data_cfg.replay_fraction))
        replay = random.Random(seed + 1).sample(pool, min(want, len(pool)))
        if len(replay) < want:
            report.note(f"data.replay_path holds {len(pool)} examples, fewer than the {want} that "
                        f"replay_fraction {data_cfg.replay_fraction} asks for; all {len(pool)} are mixed in")

    def tokenize(exs):  # task and replay rows apart, so the counts are of the examples that train
        return tokenize_examples(tokenizer, exs, data_cfg.max_length, data_cfg.overlong, data_cfg.train_on,
                                 data_report)[0]

    task_tok, replay_tok = tokenize(train_ex), tokenize(replay)
    val_tok = tokenize(val_ex)
    if not task_tok and not replay_tok:
        raise UserError("no training example has a trained token left; check max_length and the data")
    num_train = len(train_ex) + len(replay)
    length_drops = data_report.skipped["too_long"] + data_report.skipped["no_trained_tokens"]
    if length_drops > 0.5 * (num_train + len(val_ex)):
        raise UserError(f"{length_drops} of {num_train + len(val_ex)} examples were dropped for length; raise "
                        f"data.max_length (now {data_cfg.max_length}) or use data.overlong: truncate")
    return SFTData(train_ex, replay, val_ex, test_ex, task_tok + replay_tok, val_tok, len(replay_tok), data_report)


def pre_run_estimate(config: SFTConfig, data: SFTData, world: World, report: Reporter) -> dict | None:
    """The estimate `sftkit estimate` prints, computed before the model loads (the estimator counts this
    process's memory as runtime); stored in summary.json beside the measured figures."""
    if not world.is_main:
        return None
    try:
        from sftkit.estimate import estimate_run

        with torch.random.fork_rng(devices=[]):  # the measurement must not shift the weights' init
            return estimate_run(config, data.train_tok, data.val_tok, world_size=world.world_size,
                                measure=world.device.type == "cpu")
    except Exception as exc:  # an estimate must never stop a training run; say why it is missing
        report.note(f"no run estimate: {type(exc).__name__}: {exc}")
        return None


def setup_model(config: SFTConfig, data: SFTData, world: World, report: Reporter) -> tuple[Runtime, tuple[int, int]]:
    """Load the base model (4-bit for QLoRA), prepare it (attention, checkpointing, LoRA), compile its layers, wrap
    the loss for several processes, build the optimizer and schedule. Returns the runtime and (trainable, total)
    parameters."""
    train_cfg = config.train
    precision = choose_precision(train_cfg.precision, world.device)
    model = load_model(config.model.name, precision.weights_dtype, config.model.trust_remote_code,
                       quantize_4bit=train_cfg.method == "qlora", compute_dtype=precision.compute_dtype,
                       device=world.device)
    plan = ComputePlan.choose(train_cfg, world.device, getattr(model.config, "attention_dropout", 0.0))
    model = prepare_model(model, train_cfg, config.lora if train_cfg.method in ADAPTER_METHODS else None)
    if train_cfg.method != "qlora":  # a 4-bit model is loaded onto its device (and cannot be moved as a whole)
        model.to(world.device)
    compile_layers(model, plan.compile)
    num_params = count_parameters(model)  # before sharding: FSDP leaves each process a shard
    rt = Runtime.build(world, report, train_cfg, Path(config.output_dir), model,
                       CausalLMLoss(model, plan.attention.uses_kernel), len(data.train_tok), plan,
                       fsdp=train_cfg.fsdp and world.distributed)
    return rt, num_params


def startup_numbers(config: SFTConfig, data: SFTData, rt: Runtime, num_params: tuple[int, int]) -> dict:
    """The derived numbers printed before the first step."""
    train_cfg, schedule, world = config.train, rt.schedule, rt.world
    trainable, total = num_params
    num_tokens = sum(x.num_tokens for x in data.train_tok)
    num_task = len(data.train_tok) - data.num_replay_tok
    adapter = f" (r={config.lora.r}, alpha={config.lora.alpha})" if train_cfg.method in ADAPTER_METHODS else ""
    return {
        "base model": resolve_model_path(config.model.name) if config.model.name == "default" else config.model.name,
        "method": train_cfg.method + adapter + (", NF4 base through bitsandbytes" if train_cfg.method == "qlora"
                                                else ""),
        "trainable params": f"{trainable:,} of {total:,} ({100 * trainable / total:.2f}%)",
        "examples": f"train {len(data.train_tok)} (task {num_task}, replay {data.num_replay_tok}), "
                    f"val {len(data.val_tok)}, test {len(data.test)}; {data.report.skipped_text()}",
        **schedule.describe(train_cfg, world.world_size, "examples"),
        "tokens per step": f"~{num_tokens / len(data.train_tok) * schedule.examples_per_step:,.0f} "
                           f"({_layout(train_cfg.packing, rt.pad_to_multiple)})",
        "device": str(world.device) + (f", {'FSDP' if rt.fsdp else 'DDP'} x {world.world_size}"
                                       if world.distributed else ""),
        **rt.plan.startup_rows(),
    }


def _layout(packing: bool, pad_to_multiple: int) -> str:
    if not packing:
        return "padded"
    return "packed, no padding" if pad_to_multiple == 1 else f"packed, rows padded to a multiple of {pad_to_multiple}"


def train_step(rt: Runtime, state: TrainState, batches: list[MicroBatch]) -> dict:
    """One optimizer step over this process's micro-batches; updates `state` and returns the metrics row.

    Each micro-batch's summed loss is divided by the trained tokens of the whole step (all micro-batches, all
    processes) before backward, so the accumulated gradient is the gradient of the step's mean token loss. The
    losses stay on the device until the optimizer step reads them, with the gradient norm, in one transfer.
    """
    world = rt.world
    step_trained_tokens = all_reduce_sum(sum(b.num_trained_tokens for b in batches), world)
    step_tokens = all_reduce_sum(sum(b.num_tokens for b in batches), world)
    t0 = time.time()
    loss_sum = torch.zeros(1, dtype=torch.float64, device=world.device)
    for i, batch in enumerate(batches):
        batch = to_device(batch, world.device)
        with rt.grad_sync(i == len(batches) - 1):
            with rt.autocast():
                # x world_size: DDP averages gradients over processes, the normaliser is already global.
                loss = rt.module(batch) / step_trained_tokens * world.world_size
            loss.backward()
        loss_sum += loss.detach() / world.world_size
    (train_loss,), grad_norm = rt.optimizer_step(loss_sum, state.step)
    seconds = time.time() - t0
    state.step += 1
    state.trained_tokens += int(step_trained_tokens)
    state.train_seconds += seconds
    return {"step": state.step, "epoch": rt.schedule.epoch(state.step), "train_loss": train_loss,
            "lr": rt.scheduler.get_last_lr()[0], "grad_norm": grad_norm,
            "tokens_per_second": step_tokens / max(seconds, 1e-9),
            "trained_tokens_per_second": step_trained_tokens / max(seconds, 1e-9)}


@torch.no_grad()
def validate(rt: Runtime, examples: list[TokenizedExample], pad_id: int) -> float:
    """Mean loss per trained token over `examples` (split across processes), in the run's precision."""
    world, train_cfg = rt.world, rt.train
    rt.module.eval()
    mine = examples[world.rank::world.world_size]
    # Every process runs the same number of forward passes (FSDP gathers weights collectively in each).
    num_batches = math.ceil(math.ceil(len(examples) / world.world_size) / train_cfg.micro_batch_size)
    inner = rt.loss_module
    total = torch.zeros(1, dtype=torch.float64, device=world.device)
    count = 0
    for b in range(num_batches):
        chunk = mine[b * train_cfg.micro_batch_size:(b + 1) * train_cfg.micro_batch_size]
        batch = (collate(chunk, train_cfg.packing, pad_id, rt.pad_to_multiple) if chunk
                 else no_target_batch(examples[0], train_cfg.packing, pad_id, rt.pad_to_multiple))
        count += batch.num_trained_tokens
        with rt.autocast():
            total += inner(to_device(batch, world.device))
    return all_reduce_sum(total, world).item() / max(1.0, all_reduce_sum(count, world))


def no_target_batch(example: TokenizedExample, packing: bool, pad_id: int, pad_to_multiple: int = 1) -> MicroBatch:
    """A micro-batch with no trained token: its loss is a connected zero (every parameter gets a zero grad)."""
    blank = TokenizedExample(example.input_ids, [IGNORE_INDEX] * len(example.labels), example.source, example.line)
    return collate([blank], packing, pad_id, pad_to_multiple)


def finish(config: SFTConfig, data: SFTData, rt: Runtime, state: TrainState, tokenizer, num_params: tuple[int, int],
           estimate: dict | None, started: float) -> dict:
    """Load the best weights, write adapter/ and/or merged/, and summary.json (main process)."""
    world, train_cfg = rt.world, config.train
    barrier(world)
    if data.val_tok:
        rt.load_best()
    model = rt.model
    if rt.fsdp:  # gather the full weights into a plain copy of the model for export
        weights = sharding.model_state(rt.module, model, rt.fsdp)
        if world.is_main:
            model = load_model(config.model.name, rt.plan.precision.weights_dtype, config.model.trust_remote_code)
            model.load_state_dict(weights, strict=False)
    if not world.is_main:
        return {}
    model.eval()
    precision = rt.plan.precision

    def quantized_base():  # QLoRA merges onto a freshly quantized base (models.merge_into_dequantized)
        return load_model(config.model.name, precision.weights_dtype, config.model.trust_remote_code,
                          quantize_4bit=True, compute_dtype=precision.compute_dtype)

    written = export_model(model, tokenizer, rt.out_dir, train_cfg.method, config.lora.merge, quantized_base)
    trainable, total = num_params
    summary = {
        "base_model": config.model.name, "method": train_cfg.method,
        "num_train_examples": len(data.train_tok), "num_replay_examples": data.num_replay_tok,
        "num_val_examples": len(data.val_tok), "num_test_examples": len(data.test),
        **data.report.counts(),
        "steps": state.step, "initial_val_loss": state.initial_val_loss,
        "best_val_loss": state.best_val_loss, "best_step": state.best_step,
        "early_stopped": state.early_stopped, "stopped_step": state.stopped_step,
        "trained_tokens": state.trained_tokens,
        "train_tokens_per_second": state.trained_tokens / max(state.train_seconds, 1e-9),
        "train_seconds": state.train_seconds, "wall_seconds": time.time() - started,
        "peak_memory_mb": peak_memory_mb(world.device),
        "precision": rt.plan.precision.name, "attention": rt.plan.attention.name,
        "compile": rt.plan.compile.enabled, **(compile_counts() if rt.plan.compile.enabled else {}),
        "trainable_params": trainable, "total_params": total, "world_size": world.world_size,
        "outputs": written,
        "estimate": _estimate_beside_measurement(estimate, world.device.type),
    }
    write_json(rt.out_dir / "summary.json", summary)
    return summary


def _rows(examples: list[Example]) -> list[dict]:
    return [{"messages": e.messages, "source": e.source, "line": e.line} for e in examples]


def _estimate_beside_measurement(estimate: dict | None, device_type: str) -> dict | None:
    """The pre-run estimate for this device (time, memory), stored next to the measured figures."""
    if not estimate:
        return None
    times = estimate.get("time", {})
    row = times.get("cpu") if device_type == "cpu" else None
    return {"seconds": row.get("seconds") if row else None,
            "memory_mb": estimate.get("memory_mb", {}).get("total"), "flops": estimate.get("flops")}


def evaluate_after_training(out_dir: Path, config: SFTConfig, summary: dict, report: Reporter) -> dict:
    """eval.after_training: `compare` (gain over prompting, retention); eval.safety: the safety evaluation
    against the base model. Headlines go into summary.json, full results into out_dir/compare, out_dir/safety."""
    console = report.console if report.enabled else None
    if config.eval.after_training:
        from sftkit.eval.compare import run_compare
        from sftkit.eval.report import print_comparison

        result = run_compare(str(out_dir), console=console)
        summary["gain_over_prompting"] = result.get("gain_over_prompting")
        summary["retention"] = result.get("retention")
        write_json(out_dir / "summary.json", summary)
        if console:
            print_comparison(result, console)
    if config.eval.safety:
        from sftkit.safety import safety_after_training

        summary = safety_after_training(out_dir, config.model.name, summary, console)
    return summary
