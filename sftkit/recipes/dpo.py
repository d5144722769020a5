"""The DPO recipe, top to bottom: preference pairs -> policy and reference -> optimizer -> loop (accumulate,
clip, step, validate, checkpoint, stop early) -> export. Runs as one process or under torchrun (DDP).

Reference model (the policy at step 0):
  LoRA               the same model with the adapter disabled: no second copy of the weights;
  full fine-tuning   a frozen copy, or `dpo.precompute_reference: true` to score every pair once before
                     training (saved to reference_logps.safetensors and reused on resume);
  continuing an SFT adapter (`dpo.sft_adapter: continue`): always precomputed, since disabling the adapter
                     would give the base model, not the SFT model.

Loss normalisation: every micro-batch returns the sum of its per-pair losses, divided by the number of pairs of
the whole optimizer step (all micro-batches, all processes), so accumulation and processes do not change the
update. The blocks shared with sft.py are kept identical on purpose; only leaf helpers are imported.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import time
from pathlib import Path

import torch

from sftkit.training import checkpoint as ckpt
from sftkit.config import to_yaml
from sftkit.data.dataset import DataReport, split_indices
from sftkit.data.batching import epoch_order, to_device, split_step, step_indices, steps_per_epoch
from sftkit.data.preferences import load_preferences, tokenize_pairs
from sftkit.training.distributed import World, all_reduce_sum, barrier, init_world, shutdown
from sftkit.training.dpo_loss import SequenceLogProbs, collate_pairs, preference_loss
from sftkit.errors import NonFiniteLossError, UserError
from sftkit.models import count_parameters, load_tokenizer
from sftkit.training.run_dir import describe_run, export_model, peak_memory_mb, write_json
from sftkit.training.optim import build_optimizer, build_scheduler, restore_peak_lr
from sftkit.training.reporter import Reporter
from sftkit.recipes.dpo_config import DPOConfig
from sftkit.recipes.dpo_reference import load_policy, precomputed_reference, start_point
from sftkit.training.metrics_log import MetricsLog, config_changes

__all__ = ["DPOConfig", "train_dpo", "evaluate_pairs"]

STAT_KEYS = ("loss", "reward_accuracy", "reward_margin", "chosen_logp", "rejected_logp")


def train_dpo(config: DPOConfig, resume: bool = False, quiet: bool = False) -> dict:
    """Run one DPO job and return its summary (also written to OUTPUT_DIR/summary.json)."""
    started = time.time()
    world = init_world()
    out_dir = Path(config.output_dir)
    ckpt_dir = out_dir / "checkpoints"
    report = Reporter(enabled=world.is_main and not quiet, title="sftkit dpo")
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    ckpt.refuse_to_overwrite(out_dir, resume, world.is_main)
    torch.manual_seed(config.train.seed)
    random.seed(config.train.seed)

    # ---- data -------------------------------------------------------------------------------------------
    start = start_point(config)
    tokenizer = load_tokenizer(start["tokenizer"], config.model.trust_remote_code)
    if config.model.chat_template:
        tokenizer.chat_template = config.model.chat_template
    d = config.data
    data_report = DataReport()
    pairs, _ = load_preferences(d.train_path, d.format, d.on_bad_row, data_report)
    train_idx, val_idx, _ = split_indices(len(pairs), 0.0 if d.val_path else d.val_fraction, 0.0, config.train.seed)
    train_pairs = [pairs[i] for i in train_idx]
    val_pairs = [pairs[i] for i in val_idx]
    if d.val_path:
        val_pairs, _ = load_preferences(d.val_path, d.format, d.on_bad_row, data_report)
    if d.max_examples and len(train_pairs) > d.max_examples:
        train_pairs = random.Random(config.train.seed).sample(train_pairs, d.max_examples)
    train_tok, _ = tokenize_pairs(tokenizer, train_pairs, d.max_length, d.overlong, data_report)
    val_tok, _ = tokenize_pairs(tokenizer, val_pairs, d.max_length, d.overlong, data_report)
    if not train_tok:
        raise UserError("no training pair has reply tokens left; check max_length and the data")

    # ---- model ------------------------------------------------------------------------------------------
    t = config.train
    use_bf16 = t.precision == "bf16" or (t.precision == "auto" and world.device.type == "cuda"
                                         and torch.cuda.is_bf16_supported())
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    model, reference_mode = load_policy(config, start, dtype, t.packing)
    if t.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    model.to(world.device)
    reference_module = None
    if reference_mode == "frozen_copy":
        reference_model = copy.deepcopy(model).requires_grad_(False).eval()
        reference_module = SequenceLogProbs(reference_model)
    logps_module = SequenceLogProbs(model)
    train_module = logps_module
    if world.distributed:
        train_module = torch.nn.parallel.DistributedDataParallel(
            logps_module, device_ids=[world.device.index] if world.device.type == "cuda" else None)

    optimizer = build_optimizer(model, t)
    pairs_per_step = t.micro_batch_size * t.grad_accum_steps * world.world_size
    epoch_steps = steps_per_epoch(len(train_tok), pairs_per_step)
    total_steps = t.max_steps or max(1, math.ceil(t.num_epochs * epoch_steps))
    warmup_steps = round(t.warmup_ratio * total_steps)
    scheduler = build_scheduler(optimizer, t, warmup_steps, total_steps)

    trainable, total = count_parameters(model)
    c = config.dpo
    report.startup({
        "starting model": start["description"],
        "method": t.method + (f" (r={config.lora.r}, alpha={config.lora.alpha})" if t.method == "lora"
                              and not start["continue_adapter"] else ""),
        "loss": f"{c.loss_type}, beta {c.beta}; reference: {reference_mode.replace('_', ' ')}",
        "trainable params": f"{trainable:,} of {total:,} ({100 * trainable / total:.2f}%)",
        "pairs": f"train {len(train_tok)}, val {len(val_tok)}; {data_report.skipped_text()}",
        "batch": f"micro_batch_size {t.micro_batch_size} x grad_accum_steps {t.grad_accum_steps} x processes "
                 f"{world.world_size} = {pairs_per_step} pairs per optimizer step",
        "steps": f"{total_steps} optimizer steps ({epoch_steps} per epoch), warmup {warmup_steps}, "
                 f"lr {t.learning_rate} {t.lr_scheduler}",
        "precision": str(dtype).replace("torch.", "") + f" on {world.device}",
    })

    # ---- output directory describes itself ----------------------------------------------------------------
    if world.is_main:
        rows = lambda pairs: [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected,  # noqa: E731
                               "source": p.source, "line": p.line} for p in pairs]
        describe_run(out_dir, to_yaml(config), tokenizer, {"train": rows(train_pairs), "val": rows(val_pairs)},
                     data_report)

    # ---- reference log-probabilities ------------------------------------------------------------------------
    reference_table = None
    if reference_mode == "precomputed":
        reference_table = precomputed_reference(out_dir / "reference_logps.safetensors", logps_module,
                                                 {"train": train_tok, "val": val_tok}, t, tokenizer.pad_token_id,
                                                 world, resume)

    def reference_logps(batch, split: str, indices: list[int]) -> torch.Tensor:
        if reference_table is not None:
            rows = reference_table[split][indices]
            return torch.cat([rows[:, 0], rows[:, 1]])
        with torch.no_grad():
            if reference_mode == "adapter_disabled":
                with model.disable_adapter():
                    return logps_module(batch)[0]
            return reference_module(batch)[0]

    # ---- state, resume -----------------------------------------------------------------------------------
    state = {"step": 0, "trained_pairs": 0, "trained_tokens": 0, "initial_val_loss": None, "best_val_loss": None,
             "best_step": 0, "initial_val": None, "best_val": None, "evals_without_improvement": 0,
             "early_stopped": False, "train_seconds": 0.0, "config": config.model_dump(mode="json")}
    if resume:
        found = ckpt.complete_checkpoints(ckpt_dir)
        if found:
            state = ckpt.load_checkpoint(found[-1], model, optimizer, scheduler)
            report.note(f"resumed from {found[-1]} (step {state['step']})")
            restore_peak_lr(optimizer, scheduler, t, state["step"], warmup_steps, total_steps)
            for change in config_changes(state.get("config", {}), config.model_dump(mode="json")):
                report.note(f"config changed since the checkpoint: {change} (the new value is used)")
        else:
            report.note(f"--resume: no complete checkpoint in {ckpt_dir}; starting from step 0")
    metrics = MetricsLog(out_dir, world.is_main, resume_step=state["step"] if state["step"] else None)

    def validate() -> dict | None:
        if not val_tok:
            return None
        return evaluate_pairs(logps_module, reference_logps, val_tok, t.micro_batch_size, t.packing,
                              tokenizer.pad_token_id, c.beta, c.loss_type, world)

    if state["initial_val_loss"] is None and val_tok:
        initial = validate()
        state.update(initial_val=initial, best_val=initial, initial_val_loss=initial["loss"],
                     best_val_loss=initial["loss"])
        metrics.log({"step": 0, **{f"val_{k}": v for k, v in initial.items()}})
        if world.is_main:
            ckpt.save_best(ckpt_dir, model)
        report.note(f"initial validation: loss {initial['loss']:.4f}, reward accuracy "
                    f"{initial['reward_accuracy']:.3f}")

    # ---- loop ---------------------------------------------------------------------------------------------
    train_module.train()
    report.start_loop(total_steps, state["step"])
    while state["step"] < total_steps and not state["early_stopped"]:
        step = state["step"]
        epoch, step_in_epoch = divmod(step, epoch_steps)
        order = epoch_order(len(train_tok), t.seed, epoch)
        indices = step_indices(order, step_in_epoch, pairs_per_step)
        micro = split_step(indices, t.micro_batch_size, world.world_size, world.rank)
        # In a partial last step some processes may have fewer micro-batches; DDP needs the same number of
        # backward passes everywhere, so they repeat a pair with its loss multiplied by zero.
        num_micro = math.ceil(math.ceil(len(indices) / t.micro_batch_size) / world.world_size)
        micro += [None] * (num_micro - len(micro))
        step_pairs = len(indices)
        t0 = time.time()
        sums = dict.fromkeys(STAT_KEYS, 0.0)
        step_tokens, step_trained_tokens = 0, 0
        for i, mb in enumerate(micro):
            mb_indices = mb if mb is not None else [indices[0]]
            batch = to_device(collate_pairs([train_tok[j] for j in mb_indices], t.packing, tokenizer.pad_token_id),
                        world.device)
            sync = i == len(micro) - 1 or not world.distributed
            with train_module.no_sync() if not sync else contextlib.nullcontext():
                reference = reference_logps(batch, "train", mb_indices)
                policy, counts = train_module(batch)
                stats = preference_loss(policy, reference, counts, c.beta, c.loss_type)
                # x world_size: DDP averages gradients over processes, the normaliser is already global.
                weight = world.world_size / step_pairs if mb is not None else 0.0
                (stats.losses.sum() * weight).backward()
            if mb is not None:
                for key, value in stats.sums().items():
                    sums[key] += value
                step_tokens += batch.num_tokens
                step_trained_tokens += batch.num_trained_tokens
        means = {key: all_reduce_sum(value, world) / step_pairs for key, value in sums.items()}
        step_tokens = all_reduce_sum(step_tokens, world)
        step_trained_tokens = all_reduce_sum(step_trained_tokens, world)
        train_loss = means.pop("loss")
        grad_norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                                   t.max_grad_norm or float("inf"))
        if not math.isfinite(train_loss) or not torch.isfinite(grad_norm):
            last = ckpt.complete_checkpoints(ckpt_dir)
            raise NonFiniteLossError.at_step(step + 1, math.isfinite(train_loss), last[-1] if last else None)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        seconds = time.time() - t0
        state["step"] = step + 1
        state["trained_pairs"] += step_pairs
        state["trained_tokens"] += int(step_trained_tokens)
        state["train_seconds"] += seconds
        row = {"step": state["step"], "epoch": round(state["step"] / epoch_steps, 4), "train_loss": train_loss,
               **means, "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm),
               "tokens_per_second": step_tokens / max(seconds, 1e-9),
               "pairs_per_second": step_pairs / max(seconds, 1e-9)}
        if state["step"] % t.eval_every == 0 or state["step"] == total_steps:
            val = validate()
            if val is not None:
                row.update({f"val_{k}": v for k, v in val.items()})
                improved = val["loss"] < state["best_val_loss"] - t.min_delta
                if improved:
                    state.update(best_val_loss=val["loss"], best_val=val, best_step=state["step"],
                                 evals_without_improvement=0)
                    if world.is_main:
                        ckpt.save_best(ckpt_dir, model)
                else:
                    state["evals_without_improvement"] += 1
                    if t.patience and state["evals_without_improvement"] >= t.patience:
                        state["early_stopped"] = True
                        state["stopped_step"] = state["step"]
                report.note(f"step {state['step']}: validation reward accuracy {val['reward_accuracy']:.3f}, "
                            f"margin {val['reward_margin']:.4f}")
            train_module.train()
        state["config"] = config.model_dump(mode="json")
        if state["step"] % t.log_every == 0 or "val_loss" in row:
            metrics.log(row)
        report.step(row)
        if world.is_main and (state["step"] % t.save_every == 0 or state["early_stopped"]):
            ckpt.save_checkpoint(ckpt_dir, state["step"], model, optimizer, scheduler, state, t.keep_last)
        barrier(world)
    report.end_loop()

    # ---- outputs ------------------------------------------------------------------------------------------
    summary = {}
    if world.is_main:
        if val_tok:
            ckpt.load_best(ckpt_dir, model)
        model.eval()
        if t.method == "lora" and start["adapter_base"] and (Path(start["adapter_base"]) / "config.json").exists():
            model.peft_config["default"].base_model_name_or_path = start["adapter_base"]
        written = export_model(model, tokenizer, out_dir, t.method, config.lora.merge or start["force_merge"])
        best = state["best_val"] or {}
        summary = {
            "base_model": start["base_model"], "start_model": config.model.name, "method": t.method,
            "adapter_base": start["adapter_base"], "reference": reference_mode, "loss_type": c.loss_type,
            "beta": c.beta, "num_train_pairs": len(train_tok), "num_val_pairs": len(val_tok),
            "rows_skipped": data_report.rows_skipped, "skipped_by_reason": dict(data_report.skipped),
            "num_truncated": data_report.truncated,
            "steps": state["step"], "initial_val_loss": state["initial_val_loss"],
            "best_val_loss": state["best_val_loss"], "best_step": state["best_step"],
            **{f"val_{k}": v for k, v in best.items() if k != "loss"},
            "initial_val_reward_accuracy": (state["initial_val"] or {}).get("reward_accuracy"),
            "early_stopped": state["early_stopped"], "stopped_step": state.get("stopped_step"),
            "trained_pairs": state["trained_pairs"], "trained_tokens": state["trained_tokens"],
            "train_pairs_per_second": state["trained_pairs"] / max(state["train_seconds"], 1e-9),
            "train_tokens_per_second": state["trained_tokens"] / max(state["train_seconds"], 1e-9),
            "wall_seconds": time.time() - started, "peak_memory_mb": peak_memory_mb(world.device),
            "trainable_params": trainable, "total_params": total, "world_size": world.world_size,
            "outputs": written,
        }
        write_json(out_dir / "summary.json", summary)
        metrics.close()
        report.summary(summary)
    barrier(world)
    shutdown(world)
    if world.is_main and config.eval.safety:
        summary = _safety_after_training(out_dir, config, summary)
    return summary


@torch.no_grad()
def evaluate_pairs(logps_module, reference_logps, pairs, micro_batch_size: int, packing: bool, pad_id: int,
                   beta: float, loss_type: str, world: World) -> dict[str, float]:
    """Means over `pairs` (split across processes) of loss, reward accuracy and margin, and log-probabilities."""
    logps_module.eval()
    mine = list(range(world.rank, len(pairs), world.world_size))
    sums = dict.fromkeys(STAT_KEYS, 0.0)
    device = next(logps_module.parameters()).device
    for start in range(0, len(mine), micro_batch_size):
        indices = mine[start:start + micro_batch_size]
        batch = to_device(collate_pairs([pairs[i] for i in indices], packing, pad_id), device)
        policy, counts = logps_module(batch)
        stats = preference_loss(policy, reference_logps(batch, "val", indices), counts, beta, loss_type)
        for key, value in stats.sums().items():
            sums[key] += value
    return {key: all_reduce_sum(value, world) / len(pairs) for key, value in sums.items()}


def _safety_after_training(out_dir: Path, config: DPOConfig, summary: dict) -> dict:
    from sftkit.safety import print_safety, run_safety

    result = run_safety(str(out_dir), against=config.eval.safety_against or config.model.name,
                        output_dir=out_dir / "safety")
    summary["safety"] = {**result["headline"], "output_dir": result["output_dir"]}
    write_json(out_dir / "summary.json", summary)
    print_safety(result)
    return summary
