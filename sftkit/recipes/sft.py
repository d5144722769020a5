"""The SFT recipe, top to bottom: data -> model -> optimizer -> loop (accumulate, clip, step, validate,
checkpoint, stop early) -> export. Runs as one process or under torchrun (DDP; gloo on CPU).

Loss normalisation: every micro-batch returns the *sum* of token losses; it is divided by the number of
trained tokens of the whole optimizer step (all micro-batches of all processes), so micro-batch 8 x
accumulation 1, 2 x 4, and 2 processes x 4 x 1 give the same update.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from pathlib import Path

import torch

from sftkit.training import checkpoint as ckpt
from sftkit.training import sharding
from sftkit.training.attention import register as register_varlen
from sftkit.config import SFTConfig, to_yaml
from sftkit.data.dataset import DataReport, load_conversations, split_indices, tokenize_examples
from sftkit.data.batching import collate, epoch_order, to_device, split_step, step_indices, steps_per_epoch
from sftkit.training.distributed import World, all_reduce_sum, barrier, init_world, shutdown
from sftkit.errors import NonFiniteLossError, UserError
from sftkit.training.loss import CausalLMLoss
from sftkit.models import apply_lora, count_parameters, load_model, load_tokenizer, resolve_model_path
from sftkit.training.run_dir import describe_run, export_model, peak_memory_mb, write_json
from sftkit.training.optim import build_optimizer, build_scheduler, restore_peak_lr
from sftkit.training.reporter import Reporter
from sftkit.training.metrics_log import MetricsLog, config_changes


def train(config: SFTConfig, resume: bool = False, quiet: bool = False) -> dict:
    """Run one SFT training job and return its summary (also written to OUTPUT_DIR/summary.json)."""
    started = time.time()
    world = init_world()
    out_dir = Path(config.output_dir)
    ckpt_dir = out_dir / "checkpoints"
    report = Reporter(enabled=world.is_main and not quiet)
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    ckpt.refuse_to_overwrite(out_dir, resume, world.is_main)
    torch.manual_seed(config.train.seed)
    random.seed(config.train.seed)

    # ---- data -------------------------------------------------------------------------------------------
    tokenizer = load_tokenizer(config.model.name, config.model.trust_remote_code)
    if config.model.chat_template:
        tokenizer.chat_template = config.model.chat_template
    d = config.data
    data_report = DataReport()
    examples, _ = load_conversations(d.train_path, d.format, d.on_bad_row, data_report)
    train_idx, val_idx, test_idx = split_indices(len(examples), 0.0 if d.val_path else d.val_fraction,
                                                 0.0 if d.test_path else d.test_fraction, config.train.seed)
    train_ex = [examples[i] for i in train_idx]
    val_ex = [examples[i] for i in val_idx]
    test_ex = [examples[i] for i in test_idx]
    if d.val_path:
        val_ex, _ = load_conversations(d.val_path, d.format, d.on_bad_row, data_report)
    if d.test_path:
        test_ex, _ = load_conversations(d.test_path, d.format, d.on_bad_row, data_report)
    if d.max_examples and len(train_ex) > d.max_examples:
        train_ex = random.Random(config.train.seed).sample(train_ex, d.max_examples)
    num_task_examples = len(train_ex)
    if d.replay_path and d.replay_fraction > 0:
        replay, _ = load_conversations(d.replay_path, "auto", d.on_bad_row, data_report)
        want = round(len(train_ex) * d.replay_fraction / (1 - d.replay_fraction))
        picked = random.Random(config.train.seed + 1).sample(replay, min(want, len(replay)))
        if len(picked) < want:
            report.note(f"data.replay_path holds {len(replay)} examples, fewer than the {want} that "
                        f"replay_fraction {d.replay_fraction} asks for; all {len(replay)} are mixed in")
        train_ex = train_ex + picked
    # task and replay rows tokenised apart, so the counts below are of the examples that train
    task_tok, _ = tokenize_examples(tokenizer, train_ex[:num_task_examples], d.max_length, d.overlong, d.train_on,
                                    data_report)
    replay_tok, _ = tokenize_examples(tokenizer, train_ex[num_task_examples:], d.max_length, d.overlong, d.train_on,
                                      data_report)
    train_tok = task_tok + replay_tok
    val_tok, _ = tokenize_examples(tokenizer, val_ex, d.max_length, d.overlong, d.train_on, data_report)
    if not train_tok:
        raise UserError("no training example has a trained token left; check max_length and the data")
    length_drops = data_report.skipped["too_long"] + data_report.skipped["no_trained_tokens"]
    if length_drops > 0.5 * (len(train_ex) + len(val_ex)):
        raise UserError(f"{length_drops} of {len(train_ex) + len(val_ex)} examples were dropped for length; raise "
                        f"data.max_length (now {d.max_length}) or use data.overlong: truncate")

    estimate = None
    if world.is_main:  # before the model loads: the estimator counts this process's memory as runtime
        try:
            from sftkit.estimate import estimate_run

            with torch.random.fork_rng(devices=[]):  # the measurement must not shift the weights' init
                estimate = estimate_run(config, train_tok, val_tok, world_size=world.world_size,
                                        measure=world.device.type == "cpu")
        except Exception as exc:  # an estimate must never stop a training run; say why it is missing
            report.note(f"no run estimate: {type(exc).__name__}: {exc}")

    # ---- model ------------------------------------------------------------------------------------------
    t = config.train
    use_bf16 = t.precision == "bf16" or (t.precision == "auto" and world.device.type == "cuda"
                                         and torch.cuda.is_bf16_supported())
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    model = load_model(config.model.name, dtype, config.model.trust_remote_code)
    if t.packing:
        model.config._attn_implementation = register_varlen()
    if t.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()  # frozen embeddings (LoRA) would otherwise cut the graph
        model.config.use_cache = False
    if t.method == "lora":
        lc = config.lora
        model = apply_lora(model, lc.r, lc.alpha, lc.dropout, lc.target_modules, lc.use_dora, lc.use_rslora)
    model.to(world.device)
    trainable, total = count_parameters(model)  # before sharding: FSDP leaves each process a shard
    fsdp = t.fsdp and world.distributed
    loss_module = sharding.wrap(CausalLMLoss(model), model, world, fsdp)

    optimizer = build_optimizer(model, t, fused=not fsdp)  # FSDP's DTensors cannot use the fused kernel
    examples_per_step = t.micro_batch_size * t.grad_accum_steps * world.world_size
    epoch_steps = steps_per_epoch(len(train_tok), examples_per_step)
    total_steps = t.max_steps or max(1, math.ceil(t.num_epochs * epoch_steps))
    warmup_steps = round(t.warmup_ratio * total_steps)
    scheduler = build_scheduler(optimizer, t, warmup_steps, total_steps)

    train_tokens_total = sum(x.num_tokens for x in train_tok)
    report.startup({
        "base model": resolve_model_path(config.model.name) if config.model.name == "default" else config.model.name,
        "method": t.method + (f" (r={config.lora.r}, alpha={config.lora.alpha})" if t.method == "lora" else ""),
        "trainable params": f"{trainable:,} of {total:,} ({100 * trainable / total:.2f}%)",
        "examples": f"train {len(train_tok)} (task {len(task_tok)}, replay {len(replay_tok)}), "
                    f"val {len(val_tok)}, test {len(test_ex)}; {data_report.skipped_text()}",
        "batch": f"micro_batch_size {t.micro_batch_size} x grad_accum_steps {t.grad_accum_steps} x processes "
                 f"{world.world_size} = {examples_per_step} examples per optimizer step",
        "tokens per step": f"~{train_tokens_total / len(train_tok) * examples_per_step:,.0f} "
                           f"({'packed, no padding' if t.packing else 'padded'})",
        "steps": f"{total_steps} optimizer steps ({epoch_steps} per epoch), warmup {warmup_steps}, "
                 f"lr {t.learning_rate} {t.lr_scheduler}",
        "precision": str(dtype).replace("torch.", "") + f" on {world.device}"
                     + (f", {'FSDP' if fsdp else 'DDP'} x {world.world_size}" if world.distributed else ""),
    })

    # ---- output directory describes itself ----------------------------------------------------------------
    if world.is_main:
        rows = lambda exs: [{"messages": e.messages, "source": e.source, "line": e.line} for e in exs]  # noqa: E731
        # replay rows get their own file: `compare` draws its few-shot examples from the task's train.jsonl
        describe_run(out_dir, to_yaml(config), tokenizer,
                     {"train": rows(train_ex[:num_task_examples]), "replay": rows(train_ex[num_task_examples:]),
                      "val": rows(val_ex), "test": rows(test_ex)}, data_report, optional=("replay",))

    # ---- state, resume -----------------------------------------------------------------------------------
    state = {"step": 0, "trained_tokens": 0, "initial_val_loss": None, "best_val_loss": None, "best_step": 0,
             "evals_without_improvement": 0, "early_stopped": False, "train_seconds": 0.0,
             "config": config.model_dump(mode="json")}
    if resume:
        found = ckpt.complete_checkpoints(ckpt_dir)
        if found:
            parts = ckpt.read_checkpoint(found[-1])
            sharding.load_model_state(loss_module, model, parts["model"], fsdp)
            sharding.load_optimizer_state(loss_module, optimizer, parts["optimizer"], fsdp)
            scheduler.load_state_dict(parts["scheduler"])
            ckpt.set_rng_state(parts["rng"])
            state = parts["trainer_state"]
            report.note(f"resumed from {found[-1]} (step {state['step']})")
            restore_peak_lr(optimizer, scheduler, t, state["step"], warmup_steps, total_steps)
            for change in config_changes(state.get("config", {}), config.model_dump(mode="json")):
                report.note(f"config changed since the checkpoint: {change} (the new value is used)")
        else:
            report.note(f"--resume: no complete checkpoint in {ckpt_dir}; starting from step 0")
    metrics = MetricsLog(out_dir, world.is_main, resume_step=state["step"] if state["step"] else None)

    def validate() -> float | None:
        if not val_tok:
            return None
        return evaluate_loss(loss_module, val_tok, t.micro_batch_size, t.packing, tokenizer.pad_token_id, world)

    def save_best() -> None:
        weights = sharding.model_state(loss_module, model, fsdp)  # collective under FSDP
        if world.is_main:
            ckpt.write_best(ckpt_dir, weights)

    if state["initial_val_loss"] is None and val_tok:
        state["initial_val_loss"] = state["best_val_loss"] = validate()
        metrics.log({"step": 0, "val_loss": state["initial_val_loss"]})
        save_best()
        report.note(f"initial validation loss {state['initial_val_loss']:.4f}")

    # ---- loop ---------------------------------------------------------------------------------------------
    loss_module.train()
    report.start_loop(total_steps, state["step"])
    while state["step"] < total_steps and not state["early_stopped"]:
        step = state["step"]
        epoch, step_in_epoch = divmod(step, epoch_steps)
        order = epoch_order(len(train_tok), t.seed, epoch)
        indices = step_indices(order, step_in_epoch, examples_per_step)
        batches = [collate([train_tok[i] for i in mb], t.packing, tokenizer.pad_token_id)
                   for mb in split_step(indices, t.micro_batch_size, world.world_size, world.rank)]
        # In a partial last step some processes may have fewer micro-batches; DDP needs the same number of
        # backward passes everywhere, so they run a batch with no trained token (a connected zero loss).
        num_micro = math.ceil(math.ceil(len(indices) / t.micro_batch_size) / world.world_size)
        while len(batches) < num_micro:
            batches.append(_no_target_batch(train_tok[indices[0]], t.packing, tokenizer.pad_token_id))
        step_trained_tokens = all_reduce_sum(sum(b.num_trained_tokens for b in batches), world)
        step_tokens = all_reduce_sum(sum(b.num_tokens for b in batches), world)
        t0 = time.time()
        loss_sum = 0.0
        for i, batch in enumerate(batches):
            batch = to_device(batch, world.device)
            with sharding.grad_sync(loss_module, i == len(batches) - 1, fsdp):
                # x world_size: DDP averages gradients over processes, the normaliser is already global.
                loss = loss_module(batch) / step_trained_tokens * world.world_size
                loss.backward()
            loss_sum += loss.item() / world.world_size
        train_loss = all_reduce_sum(loss_sum, world)
        grad_norm = sharding.total_norm(torch.nn.utils.clip_grad_norm_(
            [p for p in model.parameters() if p.requires_grad], t.max_grad_norm or float("inf")))
        if not math.isfinite(train_loss) or not torch.isfinite(grad_norm):
            last = ckpt.complete_checkpoints(ckpt_dir)
            raise NonFiniteLossError.at_step(step + 1, math.isfinite(train_loss), last[-1] if last else None)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        seconds = time.time() - t0
        state["step"] = step + 1
        state["trained_tokens"] += int(step_trained_tokens)
        state["train_seconds"] += seconds
        row = {"step": state["step"], "epoch": round(state["step"] / epoch_steps, 4), "train_loss": train_loss,
               "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm),
               "tokens_per_second": step_tokens / max(seconds, 1e-9),
               "trained_tokens_per_second": step_trained_tokens / max(seconds, 1e-9)}
        if state["step"] % t.eval_every == 0 or state["step"] == total_steps:
            row["val_loss"] = validate()
            if row["val_loss"] is not None:
                improved = row["val_loss"] < state["best_val_loss"] - t.min_delta
                if improved:
                    state.update(best_val_loss=row["val_loss"], best_step=state["step"], evals_without_improvement=0)
                    save_best()
                else:
                    state["evals_without_improvement"] += 1
                    if t.patience and state["evals_without_improvement"] >= t.patience:
                        state["early_stopped"] = True
                        state["stopped_step"] = state["step"]
            loss_module.train()
        state["config"] = config.model_dump(mode="json")
        if state["step"] % t.log_every == 0 or "val_loss" in row:
            metrics.log(row)
        report.step(row)
        if state["step"] % t.save_every == 0 or state["early_stopped"]:
            weights = sharding.model_state(loss_module, model, fsdp)
            optim = sharding.optimizer_state(loss_module, optimizer, fsdp)
            if world.is_main:
                ckpt.write_checkpoint(ckpt_dir, state["step"], weights, optim, scheduler.state_dict(), state,
                                      t.keep_last)
        barrier(world)
    report.end_loop()

    # ---- outputs ------------------------------------------------------------------------------------------
    summary = {}
    barrier(world)
    if val_tok:
        sharding.load_model_state(loss_module, model, ckpt.read_best(ckpt_dir), fsdp)
    if fsdp:  # gather the full weights into a plain copy of the model for export
        weights = sharding.model_state(loss_module, model, fsdp)
        if world.is_main:
            model = load_model(config.model.name, dtype, config.model.trust_remote_code)
            model.load_state_dict(weights, strict=False)
    if world.is_main:
        model.eval()
        written = export_model(model, tokenizer, out_dir, t.method, config.lora.merge)
        summary = {
            "base_model": config.model.name, "method": t.method,
            "num_train_examples": len(train_tok), "num_replay_examples": len(replay_tok),
            "num_val_examples": len(val_tok), "num_test_examples": len(test_ex),
            "rows_skipped": data_report.rows_skipped, "skipped_by_reason": dict(data_report.skipped),
            "num_truncated": data_report.truncated,
            "steps": state["step"], "initial_val_loss": state["initial_val_loss"],
            "best_val_loss": state["best_val_loss"], "best_step": state["best_step"],
            "early_stopped": state["early_stopped"], "stopped_step": state.get("stopped_step"),
            "trained_tokens": state["trained_tokens"],
            "train_tokens_per_second": state["trained_tokens"] / max(state["train_seconds"], 1e-9),
            "train_seconds": state["train_seconds"], "wall_seconds": time.time() - started,
            "peak_memory_mb": peak_memory_mb(world.device),
            "trainable_params": trainable, "total_params": total, "world_size": world.world_size,
            "outputs": written,
            "estimate": _estimate_beside_measurement(estimate, world.device.type),
        }
        write_json(out_dir / "summary.json", summary)
        metrics.close()
        report.summary(summary)
    barrier(world)
    shutdown(world)
    if world.is_main and (config.eval.after_training or config.eval.safety):
        summary = _evaluate_after_training(out_dir, config, summary, report)
    return summary


@torch.no_grad()
def evaluate_loss(loss_module, examples, micro_batch_size: int, packing: bool, pad_id: int, world: World) -> float:
    """Mean loss per trained token over `examples` (split across processes)."""
    loss_module.eval()
    mine = examples[world.rank::world.world_size]
    # Every process runs the same number of forward passes (FSDP gathers weights collectively in each).
    num_batches = math.ceil(math.ceil(len(examples) / world.world_size) / micro_batch_size)
    inner = loss_module.module if hasattr(loss_module, "module") else loss_module
    total, count = 0.0, 0
    for b in range(num_batches):
        chunk = mine[b * micro_batch_size:(b + 1) * micro_batch_size]
        batch = collate(chunk, packing, pad_id) if chunk else _no_target_batch(examples[0], packing, pad_id)
        batch = to_device(batch, world.device)
        total += float(inner(batch))
        count += batch.num_trained_tokens
    return all_reduce_sum(total, world) / max(1.0, all_reduce_sum(count, world))


def _no_target_batch(example, packing: bool, pad_id: int):
    from sftkit.data.dataset import TokenizedExample
    from sftkit.data.chat_labels import IGNORE_INDEX

    blank = TokenizedExample(example.input_ids, [IGNORE_INDEX] * len(example.labels), example.source, example.line)
    return collate([blank], packing, pad_id)


def _estimate_beside_measurement(estimate: dict | None, device_type: str) -> dict | None:
    """The pre-run estimate for this device (time, memory), stored next to the measured figures."""
    if not estimate:
        return None
    times = estimate.get("time", {})
    row = times.get("cpu") if device_type == "cpu" else None
    return {"seconds": row.get("seconds") if row else None,
            "memory_mb": estimate.get("memory_mb", {}).get("total"), "flops": estimate.get("flops")}


def _evaluate_after_training(out_dir: Path, config: SFTConfig, summary: dict, report) -> dict:
    """eval.after_training: `compare` (gain over prompting, retention); eval.safety: the safety evaluation
    against the base model. Headlines go into summary.json, full results into out_dir/comparison, out_dir/safety."""
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
        from sftkit.safety import print_safety, run_safety

        safety = run_safety(str(out_dir), against=config.model.name, console=console)
        summary["safety"] = {**safety["headline"], "output_dir": safety["output_dir"]}
        write_json(out_dir / "summary.json", summary)
        if console:
            print_safety(safety, console)
    return summary


def clean_output_dir(path: Path) -> None:
    """Remove a previous run (used by tests and `--overwrite`)."""
    shutil.rmtree(path, ignore_errors=True)
