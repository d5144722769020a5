"""The SFT recipe as named phases over the shared runtime (sftkit/training/loop.py):

    setup_data (recipes/sft_data.py) -> setup_model -> [resume] -> initial validation -> loop of train_step
    (validate, checkpoint, stop early) -> export -> evaluation after training; or, at `stop_at_step`, pause

Runs as one process or under torchrun (DDP; FSDP2 for full fine-tuning; gloo on CPU).

Loss normalisation (train_step): every micro-batch returns the *sum* of its token losses; it is divided by the
number of trained tokens of the whole optimizer step (all micro-batches of all processes), so micro-batch 8 x
accumulation 1, 2 x 4, and 2 processes x 4 x 1 give the same update.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from sftkit.config import to_yaml
from sftkit.data.batching import MicroBatch, collate, to_device
from sftkit.data.chat_labels import IGNORE_INDEX
from sftkit.data.chat_templates import use_chat_template
from sftkit.data.dataset import TokenizedExample
from sftkit.models import count_parameters, load_model, load_tokenizer, resolve_model_path
from sftkit.recipes.sft_config import SFTConfig
from sftkit.recipes.sft_data import SFTData, example_rows, setup_data
from sftkit.report import report_after_training
from sftkit.training import sharding
from sftkit.training.distributed import World, all_reduce_sum, barrier, shutdown
from sftkit.training.compile import compile_counts, compile_layers
from sftkit.training.loop import ADAPTER_METHODS, ComputePlan, Runtime, prepare_model, start_process
from sftkit.training.loss import CausalLMLoss
from sftkit.training.metrics_log import MetricsLog
from sftkit.training.precision import choose_precision
from sftkit.training.reporter import Reporter
from sftkit.training.run_dir import describe_run, export_model, peak_memory_mb, release_freed_memory, write_json
from sftkit.training.state import TrainState


def train(config: SFTConfig, resume: bool = False, quiet: bool = False, stop_at_step: int | None = None,
          estimate: bool = True) -> dict:
    """Run one SFT training job and return its summary (also written to OUTPUT_DIR/summary.json).

    stop_at_step: pause after this optimizer step if the run would go on: see `pause`. The learning-rate schedule
    still spans the whole run, so `resume=True` later continues exactly as if it had never paused.
    estimate: compute the pre-run estimate kept in summary.json (a sweep, starting its trials rung by rung,
    skips it: it times a layer on the CPU each time).
    """
    started = time.time()
    out_dir = Path(config.output_dir)
    world, report = start_process(config.train, out_dir, resume, "sftkit train", quiet)
    tokenizer = load_tokenizer(config.model.name, config.model.trust_remote_code)
    use_chat_template(tokenizer, config.model.chat_template)
    data = setup_data(config, tokenizer, report)
    estimate = pre_run_estimate(config, data, world, report) if estimate else None
    release_freed_memory()  # the measurement's freed tensors would otherwise stay resident through training
    rt, num_params = setup_model(config, data, world, report)
    report.startup(startup_numbers(config, data, rt, num_params))
    if world.is_main:
        # replay rows get their own file: `compare` draws its few-shot examples from the task's train.jsonl
        describe_run(out_dir, to_yaml(config), tokenizer,
                     {"train": example_rows(data.train), "replay": example_rows(data.replay),
                      "val": example_rows(data.val), "test": example_rows(data.test)},
                     data.report, optional=("replay",))

    state = (rt.resume(config.model_dump(mode="json")) if resume else None) or TrainState()
    metrics = MetricsLog(out_dir, world.is_main, resume_step=state.step or None, report_to=config.train.report_to,
                         config=config.model_dump(mode="json"))
    pad_id, pad_to = tokenizer.pad_token_id, rt.pad_to_multiple
    if state.initial_val_loss is None and data.val_tok:
        state.record_initial_validation({"loss": validate(rt, data.val_tok, pad_id)})
        metrics.log({"step": 0, "val_loss": state.initial_val_loss})
        rt.save_best()
        report.note(f"initial validation loss {state.initial_val_loss:.4f}")

    rt.module.train()
    report.start_loop(rt.schedule.total_steps, state.step)
    last_step = min(rt.schedule.total_steps, stop_at_step or rt.schedule.total_steps)
    val_loss_now = None  # the validation loss of the weights of the current step, when it was measured
    while state.step < last_step and not state.early_stopped:
        indices, micro = rt.micro_batches(state.step, len(data.train_tok))
        batches = [collate([data.train_tok[i] for i in mb], config.train.packing, pad_id, pad_to) if mb is not None
                   else no_target_batch(data.train_tok[indices[0]], config.train.packing, pad_id, pad_to)
                   for mb in micro]
        row = train_step(rt, state, batches)
        val_loss_now = None
        if rt.is_validation_step(state.step):
            row["val_loss"] = val_loss_now = validate(rt, data.val_tok, pad_id) if data.val_tok else None
            if row["val_loss"] is not None and state.record_validation(
                    {"loss": row["val_loss"]}, config.train.min_delta, config.train.patience):
                rt.save_best()
            rt.module.train()
        rt.end_step(state, row, metrics, config.model_dump(mode="json"))
    report.end_loop()
    if state.step < rt.schedule.total_steps and not state.early_stopped:
        return pause(config, data, rt, state, metrics, tokenizer, val_loss_now)

    summary = finish(config, data, rt, state, tokenizer, num_params, estimate, started)
    rt.end_run(summary, metrics)
    if world.is_main:
        try:
            if config.eval.after_training or config.eval.safety or config.eval.redteam:
                summary = evaluate_after_training(out_dir, config, summary, report)
        finally:
            metrics.finish(summary)
        report_after_training(out_dir, report.note)  # after the evaluation, so the page shows its results
    return summary


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
    written = export_weights(config, rt, tokenizer)
    if not world.is_main:
        return {}
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


def export_weights(config: SFTConfig, rt: Runtime, tokenizer) -> dict[str, str]:
    """Write the model's current weights as adapter/ and/or merged/ (main process; {} elsewhere)."""
    model, precision = rt.model, rt.plan.precision
    if rt.fsdp:  # gather the full weights into a plain copy of the model for export
        weights = sharding.model_state(rt.module, model, rt.fsdp)
        if rt.world.is_main:
            model = load_model(config.model.name, precision.weights_dtype, config.model.trust_remote_code)
            model.load_state_dict(weights, strict=False)
    if not rt.world.is_main:
        return {}
    model.eval()

    def quantized_base():  # QLoRA merges onto a freshly quantized base (models.merge_into_dequantized)
        return load_model(config.model.name, precision.weights_dtype, config.model.trust_remote_code,
                          quantize_4bit=True, compute_dtype=precision.compute_dtype)

    return export_model(model, tokenizer, rt.out_dir, config.train.method, config.lora.merge, quantized_base)


def pause(config: SFTConfig, data: SFTData, rt: Runtime, state: TrainState, metrics: MetricsLog, tokenizer,
          val_loss: float | None) -> dict:
    """`stop_at_step` came before the end: checkpoint this step, validate its weights (unless the loop just
    did), write them as adapter/ or merged/, and return `{paused_at_step, total_steps, val_loss, best_val_loss,
    best_step, ...}`. No summary.json: the run is not over. A validation the loop did not make here is not
    counted towards the best weights or early stopping, so the paused run stays the uninterrupted one."""
    if val_loss is None and data.val_tok:
        val_loss = validate(rt, data.val_tok, tokenizer.pad_token_id)
    if not rt.is_checkpoint_step(state):
        rt.save_checkpoint(state)
    written = export_weights(config, rt, tokenizer)
    barrier(rt.world)
    metrics.close()
    rt.report.note(f"paused at step {state.step} of {rt.schedule.total_steps}; --resume continues the run")
    shutdown(rt.world)
    return {"paused_at_step": state.step, "steps": state.step, "total_steps": rt.schedule.total_steps,
            "val_loss": val_loss, "initial_val_loss": state.initial_val_loss, "best_val_loss": state.best_val_loss,
            "best_step": state.best_step, "early_stopped": False, "trained_tokens": state.trained_tokens,
            "train_seconds": state.train_seconds, "outputs": written}


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
    against the base model; eval.redteam: the red-team suite against it. Headlines go into summary.json, full
    results into out_dir/compare, out_dir/safety, out_dir/redteam."""
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
    if config.eval.redteam:
        from sftkit.redteam.evaluate import redteam_after_training

        summary = redteam_after_training(out_dir, config.model.name, summary, console)
    return summary
