"""The DPO recipe as named phases over the shared runtime (sftkit/training/loop.py):

    setup_data -> setup_model (policy and reference) -> reference table -> [resume] -> initial validation ->
    loop of train_step (validate, checkpoint, stop early) -> export -> safety after training

Runs as one process or under torchrun (DDP). Only the loss and the reference differ from the SFT recipe.

Reference model (the policy at step 0; sftkit/recipes/dpo_reference.py):
  LoRA               the same model with the adapter disabled: no second copy of the weights;
  full fine-tuning   a frozen copy, or `dpo.precompute_reference: true` to score every pair once before
                     training (saved to reference_logps.safetensors and reused on resume);
  continuing an SFT adapter (`dpo.sft_adapter: continue`): always precomputed, since disabling the adapter
                     would give the base model, not the SFT model.

Loss normalisation (train_step): every micro-batch returns the sum of its per-pair losses, divided by the
number of pairs of the whole optimizer step (all micro-batches, all processes), so accumulation and processes
do not change the update.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sftkit.config import to_yaml
from sftkit.data.batching import MicroBatch, to_device
from sftkit.data.dataset import DataReport, load_splits
from sftkit.data.preferences import PreferencePair, TokenizedPair, load_preferences, tokenize_pairs
from sftkit.errors import UserError
from sftkit.models import count_parameters, load_tokenizer
from sftkit.recipes.dpo_config import DPOConfig
from sftkit.recipes.dpo_reference import Reference, StartPoint, load_policy, start_point
from sftkit.training.distributed import World, all_reduce_sum
from sftkit.training.dpo_loss import STAT_KEYS, SequenceLogProbs, collate_pairs, preference_loss
from sftkit.training.compile import compile_layers
from sftkit.training.loop import ComputePlan, Runtime, prepare_model, start_process
from sftkit.training.metrics_log import MetricsLog
from sftkit.training.precision import choose_precision
from sftkit.training.reporter import Reporter
from sftkit.training.run_dir import describe_run, export_model, peak_memory_mb, write_json
from sftkit.training.state import TrainState

__all__ = ["DPOConfig", "train_dpo", "train_step", "validate"]



@dataclass
class PreferenceData:
    """The run's preference pairs: raw splits (written to data/) and the tokenised pairs that train."""

    train: list[PreferencePair]
    val: list[PreferencePair]
    train_tok: list[TokenizedPair]
    val_tok: list[TokenizedPair]
    report: DataReport = field(default_factory=DataReport)


def train_dpo(config: DPOConfig, resume: bool = False, quiet: bool = False) -> dict:
    """Run one DPO job and return its summary (also written to OUTPUT_DIR/summary.json)."""
    started = time.time()
    out_dir = Path(config.output_dir)
    world, report = start_process(config.train, out_dir, resume, "sftkit dpo", quiet)
    start = start_point(config)
    tokenizer = load_tokenizer(start.tokenizer, config.model.trust_remote_code)
    if config.model.chat_template:
        tokenizer.chat_template = config.model.chat_template
    data = setup_data(config, tokenizer)
    rt, reference, num_params = setup_model(config, start, data, world, report)
    report.startup(startup_numbers(config, start, data, rt, reference, num_params))
    if world.is_main:
        describe_run(out_dir, to_yaml(config), tokenizer, {"train": _rows(data.train), "val": _rows(data.val)},
                     data.report)
    if reference.mode == "precomputed":
        reference.precompute(out_dir / "reference_logps.safetensors", {"train": data.train_tok, "val": data.val_tok},
                             config.train, tokenizer.pad_token_id, world, resume, rt.autocast)

    state = (rt.resume(config.model_dump(mode="json")) if resume else None) or TrainState()
    metrics = MetricsLog(out_dir, world.is_main, resume_step=state.step or None)
    pad_id, dpo = tokenizer.pad_token_id, config.dpo
    if state.initial_val_loss is None and data.val_tok:
        state.record_initial_validation(validate(rt, reference, data.val_tok, pad_id, dpo))
        metrics.log({"step": 0, **{f"val_{k}": v for k, v in state.initial_val.items()}})
        rt.save_best()
        report.note(f"initial validation: loss {state.initial_val['loss']:.4f}, reward accuracy "
                    f"{state.initial_val['reward_accuracy']:.3f}")

    rt.module.train()
    report.start_loop(rt.schedule.total_steps, state.step)
    while state.step < rt.schedule.total_steps and not state.early_stopped:
        indices, micro = rt.micro_batches(state.step, len(data.train_tok))
        # a padding micro-batch (None) repeats a pair of the step with its loss multiplied by zero
        batches = [(collate_pairs([data.train_tok[j] for j in mb or indices[:1]], config.train.packing, pad_id,
                                  rt.pad_to_multiple), mb or indices[:1], mb is not None) for mb in micro]
        row = train_step(rt, state, batches, len(indices), reference, dpo)
        if rt.is_validation_step(state.step):
            if data.val_tok:
                val = validate(rt, reference, data.val_tok, pad_id, dpo)
                row.update({f"val_{k}": v for k, v in val.items()})
                if state.record_validation(val, config.train.min_delta, config.train.patience):
                    rt.save_best()
                report.note(f"step {state.step}: validation reward accuracy {val['reward_accuracy']:.3f}, "
                            f"margin {val['reward_margin']:.4f}")
            rt.module.train()
        rt.end_step(state, row, metrics, config.model_dump(mode="json"))
    report.end_loop()

    summary = finish(config, start, data, rt, reference, state, tokenizer, num_params, started)
    rt.end_run(summary, metrics)
    if world.is_main and config.eval.safety:
        from sftkit.safety import safety_after_training

        summary = safety_after_training(out_dir, config.eval.safety_against or config.model.name, summary,
                                        report.console if report.enabled else None)
    return summary


def setup_data(config: DPOConfig, tokenizer) -> PreferenceData:
    """Read and split the preference pairs (seeded) and tokenise prompt + each reply."""
    data_cfg, seed = config.data, config.train.seed
    data_report = DataReport()

    def load(spec):
        return load_preferences(spec, data_cfg.format, data_cfg.on_bad_row, data_report)[0]

    train_pairs, val_pairs, _ = load_splits(data_cfg, seed, load, "sftkit.dpo")
    train_tok, _ = tokenize_pairs(tokenizer, train_pairs, data_cfg.max_length, data_cfg.overlong, data_report)
    val_tok, _ = tokenize_pairs(tokenizer, val_pairs, data_cfg.max_length, data_cfg.overlong, data_report)
    if not train_tok:
        raise UserError("no training pair has reply tokens left; check max_length and the data")
    return PreferenceData(train_pairs, val_pairs, train_tok, val_tok, data_report)


def setup_model(config: DPOConfig, start: StartPoint, data: PreferenceData, world: World,
                report: Reporter) -> tuple[Runtime, Reference, tuple[int, int]]:
    """The policy (prepared like SFT's model; a new LoRA adapter unless an SFT adapter is continued), its
    reference, the runtime around the per-sequence log-probability module. The policy's layers are compiled
    after the reference is made (a frozen copy stays eager)."""
    train_cfg = config.train
    model = load_policy(config, start, choose_precision(train_cfg.precision, world.device).weights_dtype)
    plan = ComputePlan.choose(train_cfg, world.device, getattr(model.config, "attention_dropout", 0.0))
    new_adapter = train_cfg.method == "lora" and not start.continue_adapter
    model = prepare_model(model, train_cfg, config.lora if new_adapter else None)
    model.to(world.device)
    logps_module = SequenceLogProbs(model, plan.attention.uses_kernel)
    reference = Reference.for_policy(config, start, model, logps_module)
    compile_layers(model, plan.compile)
    num_params = count_parameters(model)
    rt = Runtime.build(world, report, train_cfg, Path(config.output_dir), model, logps_module, len(data.train_tok),
                       plan)
    return rt, reference, num_params


def startup_numbers(config: DPOConfig, start: StartPoint, data: PreferenceData, rt: Runtime, reference: Reference,
                    num_params: tuple[int, int]) -> dict:
    """The derived numbers printed before the first step."""
    train_cfg, schedule, dpo = config.train, rt.schedule, config.dpo
    trainable, total = num_params
    new_adapter = train_cfg.method == "lora" and not start.continue_adapter
    return {
        "starting model": start.description,
        "method": train_cfg.method + (f" (r={config.lora.r}, alpha={config.lora.alpha})" if new_adapter else ""),
        "loss": f"{dpo.loss_type}, beta {dpo.beta}; reference: {reference.mode.replace('_', ' ')}",
        "trainable params": f"{trainable:,} of {total:,} ({100 * trainable / total:.2f}%)",
        "pairs": f"train {len(data.train_tok)}, val {len(data.val_tok)}; {data.report.skipped_text()}",
        **schedule.describe(train_cfg, rt.world.world_size, "pairs"),
        "device": str(rt.world.device) + (f", DDP x {rt.world.world_size}" if rt.world.distributed else ""),
        **rt.plan.startup_rows(),
    }


def train_step(rt: Runtime, state: TrainState, batches: list[tuple[MicroBatch, list[int], bool]],
               num_step_pairs: int, reference: Reference, dpo) -> dict:
    """One optimizer step over this process's micro-batches `(batch, pair indices, counted)`; updates `state`
    and returns the metrics row. Each micro-batch's summed pair loss is divided by the pairs of the whole step
    (all processes); a micro-batch that is not counted is padding and weighs zero. The statistics stay on the
    device until the optimizer step reads them, with the gradient norm, in one transfer."""
    world = rt.world
    t0 = time.time()
    sums = torch.zeros(len(STAT_KEYS), dtype=torch.float64, device=world.device)
    step_tokens, step_trained_tokens = 0, 0
    for i, (batch, indices, counted) in enumerate(batches):
        batch = to_device(batch, world.device)
        with rt.grad_sync(i == len(batches) - 1):
            with rt.autocast():
                ref_logps = reference.logps(batch, "train", indices)
                policy, counts = rt.module(batch)
            stats = preference_loss(policy, ref_logps, counts, dpo.beta, dpo.loss_type)
            # x world_size: DDP averages gradients over processes, the normaliser is already global.
            weight = world.world_size / num_step_pairs if counted else 0.0
            (stats.losses.sum() * weight).backward()
        if counted:
            sums += stats.sum_tensor()
            step_tokens += batch.num_tokens
            step_trained_tokens += batch.num_trained_tokens
    step_tokens = all_reduce_sum(step_tokens, world)
    step_trained_tokens = all_reduce_sum(step_trained_tokens, world)
    values, grad_norm = rt.optimizer_step(sums, state.step)
    means = {key: value / num_step_pairs for key, value in zip(STAT_KEYS, values)}
    train_loss = means.pop("loss")
    seconds = time.time() - t0
    state.step += 1
    state.trained_examples += num_step_pairs
    state.trained_tokens += int(step_trained_tokens)
    state.train_seconds += seconds
    return {"step": state.step, "epoch": rt.schedule.epoch(state.step), "train_loss": train_loss, **means,
            "lr": rt.scheduler.get_last_lr()[0], "grad_norm": grad_norm,
            "tokens_per_second": step_tokens / max(seconds, 1e-9),
            "pairs_per_second": num_step_pairs / max(seconds, 1e-9)}


@torch.no_grad()
def validate(rt: Runtime, reference: Reference, pairs: list[TokenizedPair], pad_id: int, dpo) -> dict[str, float]:
    """Means over `pairs` (split across processes) of loss, reward accuracy and margin, and log-probabilities."""
    world, train_cfg = rt.world, rt.train
    logps_module = rt.loss_module
    logps_module.eval()
    mine = list(range(world.rank, len(pairs), world.world_size))
    sums = torch.zeros(len(STAT_KEYS), dtype=torch.float64, device=world.device)
    for start in range(0, len(mine), train_cfg.micro_batch_size):
        indices = mine[start:start + train_cfg.micro_batch_size]
        batch = to_device(collate_pairs([pairs[i] for i in indices], train_cfg.packing, pad_id, rt.pad_to_multiple),
                          world.device)
        with rt.autocast():
            policy, counts = logps_module(batch)
            ref_logps = reference.logps(batch, "val", indices)
        sums += preference_loss(policy, ref_logps, counts, dpo.beta, dpo.loss_type).sum_tensor()
    values = all_reduce_sum(sums, world).tolist()
    return {key: value / len(pairs) for key, value in zip(STAT_KEYS, values)}


def finish(config: DPOConfig, start: StartPoint, data: PreferenceData, rt: Runtime, reference: Reference,
           state: TrainState, tokenizer, num_params: tuple[int, int], started: float) -> dict:
    """Load the best weights, write adapter/ and/or merged/, and summary.json (main process)."""
    train_cfg, world = config.train, rt.world
    if data.val_tok:
        rt.load_best()
    if not world.is_main:
        return {}
    model = rt.model.eval()
    if train_cfg.method == "lora" and start.adapter_base and (Path(start.adapter_base) / "config.json").exists():
        model.peft_config["default"].base_model_name_or_path = start.adapter_base
    written = export_model(model, tokenizer, rt.out_dir, train_cfg.method, config.lora.merge or start.force_merge)
    best = state.best_val or {}
    trainable, total = num_params
    summary = {
        "base_model": start.base_model, "start_model": config.model.name, "method": train_cfg.method,
        "adapter_base": start.adapter_base, "reference": reference.mode, "loss_type": config.dpo.loss_type,
        "beta": config.dpo.beta, "num_train_pairs": len(data.train_tok), "num_val_pairs": len(data.val_tok),
        **data.report.counts(),
        "steps": state.step, "initial_val_loss": state.initial_val_loss,
        "best_val_loss": state.best_val_loss, "best_step": state.best_step,
        **{f"val_{k}": v for k, v in best.items() if k != "loss"},
        "initial_val_reward_accuracy": (state.initial_val or {}).get("reward_accuracy"),
        "early_stopped": state.early_stopped, "stopped_step": state.stopped_step,
        "trained_pairs": state.trained_examples, "trained_tokens": state.trained_tokens,
        "train_pairs_per_second": state.trained_examples / max(state.train_seconds, 1e-9),
        "train_tokens_per_second": state.trained_tokens / max(state.train_seconds, 1e-9),
        "wall_seconds": time.time() - started, "peak_memory_mb": peak_memory_mb(world.device),
        "trainable_params": trainable, "total_params": total, "world_size": world.world_size,
        "outputs": written,
    }
    write_json(rt.out_dir / "summary.json", summary)
    return summary


def _rows(pairs: list[PreferencePair]) -> list[dict]:
    return [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected, "source": p.source, "line": p.line}
            for p in pairs]
