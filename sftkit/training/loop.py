"""The runtime both recipes compose: process start-up (seed, threads), model preparation, the step schedule with
its partial-step padding, the finite guard around the optimizer step, and checkpoint save/resume. It knows
nothing of SFT vs DPO: a recipe brings its data, its loss and its loop body.

How a run computes is decided once, before the model loads, and printed: the precision
(sftkit.training.precision), the attention path (sftkit.training.attention) and regional compile
(sftkit.training.compile). The optimizer step reads the step's loss and gradient norm from the device in one
transfer; nothing else in a step waits on the device.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from sftkit.data.batching import epoch_order, split_step, step_indices, steps_per_epoch
from sftkit.errors import NonFiniteLossError
from sftkit.training import checkpoint as ckpt
from sftkit.training.attention import AttentionPath, choose_attention
from sftkit.training import sharding
from sftkit.training.compile import CompilePlan, choose_compile
from sftkit.training.distributed import World, all_reduce_sum, barrier, init_world, shutdown
from sftkit.training.metrics_log import config_changes
from sftkit.training.optim import build_optimizer, build_scheduler, restore_peak_lr
from sftkit.training.precision import Precision, choose_precision
from sftkit.training.reporter import Reporter
from sftkit.training.state import TrainState


def start_process(train, out_dir: Path, resume: bool, reporter_title: str, quiet: bool) -> tuple[World, Reporter]:
    """Join the process group, set threads and seeds, and refuse to overwrite a finished run."""
    world = init_world()
    report = Reporter(enabled=world.is_main and not quiet, title=reporter_title)
    if train.num_threads:
        torch.set_num_threads(train.num_threads)
    ckpt.refuse_to_overwrite(out_dir, resume, world.is_main)
    torch.manual_seed(train.seed)
    random.seed(train.seed)
    return world, report


@dataclass(frozen=True)
class ComputePlan:
    """How the run computes: precision, attention path, regional compile (each with the reason it was chosen)."""

    precision: Precision
    attention: AttentionPath
    compile: CompilePlan

    @classmethod
    def choose(cls, train, device: torch.device, attention_dropout: float = 0.0) -> ComputePlan:
        precision = choose_precision(train.precision, device)
        return cls(precision, choose_attention(train.packing, device, precision.compute_dtype, attention_dropout),
                   choose_compile(train.compile, device, train.method))

    def startup_rows(self) -> dict[str, str]:
        """The start-up table's rows for the choices."""
        return {"precision": self.precision.describe(), "attention": self.attention.describe(),
                "compile": self.compile.describe()}


ADAPTER_METHODS = ("lora", "qlora")  # methods that train a LoRA adapter on a frozen base


def prepare_model(model, train, lora=None):
    """Packed attention, gradient checkpointing and (with a `lora` section) a new LoRA adapter, in that order.
    A 4-bit (QLoRA) base is first made trainable through as peft prescribes: frozen, norms and head in fp32.
    Every LoRA dropout (new or continued adapter) saves a 1-byte mask for backward (sftkit.training.dropout)."""
    from sftkit.models import apply_lora
    from sftkit.training.attention import register as register_varlen
    from sftkit.training.dropout import use_mask_dropout

    if getattr(model, "is_loaded_in_4bit", False):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if train.packing:
        model.config._attn_implementation = register_varlen()
    if train.gradient_checkpointing:
        # `activation_checkpointing_enable` is transformers 5's name; older 5.x releases have only the other
        enable = getattr(model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()  # frozen embeddings (LoRA) would otherwise cut the graph
        model.config.use_cache = False
    if lora is not None:
        model = apply_lora(model, lora)
    use_mask_dropout(model)
    return model


@dataclass
class Schedule:
    """How many examples an optimizer step takes and how many steps the run has."""

    examples_per_step: int
    epoch_steps: int
    total_steps: int
    warmup_steps: int

    @classmethod
    def plan(cls, num_examples: int, train, world_size: int) -> Schedule:
        examples_per_step = train.micro_batch_size * train.grad_accum_steps * world_size
        epoch_steps = steps_per_epoch(num_examples, examples_per_step)
        total_steps = train.max_steps or max(1, math.ceil(train.num_epochs * epoch_steps))
        return cls(examples_per_step, epoch_steps, total_steps, round(train.warmup_ratio * total_steps))

    def epoch(self, step: int) -> float:
        return round(step / self.epoch_steps, 4)

    def describe(self, train, world_size: int, unit: str) -> dict[str, str]:
        """The start-up table's `batch` and `steps` rows (`unit`: what one example is, e.g. `pairs`)."""
        return {"batch": f"micro_batch_size {train.micro_batch_size} x grad_accum_steps {train.grad_accum_steps} x "
                         f"processes {world_size} = {self.examples_per_step} {unit} per optimizer step",
                "steps": f"{self.total_steps} optimizer steps ({self.epoch_steps} per epoch), warmup "
                         f"{self.warmup_steps}, lr {train.learning_rate} {train.lr_scheduler}"}


@dataclass
class Runtime:
    """The objects a recipe's loop works with. `module` is what forward/backward runs through (the recipe's
    loss module, DDP/FSDP-wrapped); `model` is the (PEFT) model whose trainable parameters are optimised."""

    world: World
    report: Reporter
    train: object
    out_dir: Path
    model: torch.nn.Module
    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    schedule: Schedule
    fsdp: bool
    plan: ComputePlan

    @classmethod
    def build(cls, world: World, report: Reporter, train, out_dir: Path, model, loss_module, num_examples: int,
              plan: ComputePlan, fsdp: bool = False) -> Runtime:
        """Wrap the loss module for several processes and build AdamW and the LR schedule."""
        module = sharding.wrap(loss_module, model, world, fsdp)
        optimizer = build_optimizer(model, train, fused=not fsdp)  # FSDP's DTensors cannot use the fused kernel
        schedule = Schedule.plan(num_examples, train, world.world_size)
        scheduler = build_scheduler(optimizer, train, schedule.warmup_steps, schedule.total_steps)
        return cls(world, report, train, out_dir, model, module, optimizer, scheduler, schedule, fsdp, plan)

    def autocast(self):
        """The context a forward pass runs in (bf16 autocast on CPU, or nothing); backward runs outside it."""
        return self.plan.precision.context()

    @property
    def pad_to_multiple(self) -> int:
        """What packed rows are padded to (`collate(..., pad_to_multiple=)`): 64 for compiled layers, else 1."""
        return self.plan.compile.pad_to_multiple

    @property
    def loss_module(self) -> torch.nn.Module:
        """The recipe's loss module without the DDP wrapper (for forward passes outside backward)."""
        return self.module.module if hasattr(self.module, "module") else self.module

    @property
    def ckpt_dir(self) -> Path:
        return self.out_dir / "checkpoints"

    def micro_batches(self, step: int, num_examples: int) -> tuple[list[int], list[list[int] | None]]:
        """(every example index of optimizer step `step`, this process's micro-batches of it).

        In a partial last step some processes may have fewer micro-batches; DDP needs the same number of
        backward passes everywhere, so the list is padded with None: the recipe runs a micro-batch whose loss
        contributes nothing (a connected zero) in their place.
        """
        epoch, step_in_epoch = divmod(step, self.schedule.epoch_steps)
        order = epoch_order(num_examples, self.train.seed, epoch)
        indices = step_indices(order, step_in_epoch, self.schedule.examples_per_step)
        micro: list[list[int] | None] = list(split_step(indices, self.train.micro_batch_size, self.world.world_size,
                                                        self.world.rank))
        num_micro = math.ceil(math.ceil(len(indices) / self.train.micro_batch_size) / self.world.world_size)
        return indices, micro + [None] * (num_micro - len(micro))

    def grad_sync(self, is_last_micro_batch: bool):
        """Context for one micro-batch's backward: gradients are reduced across processes on the last one only."""
        return sharding.grad_sync(self.module, is_last_micro_batch, self.fsdp)

    def optimizer_step(self, sums: torch.Tensor, step: int) -> tuple[list[float], float]:
        """`sums`: this process's 1-D tensor of the step's sums, the loss first. Sum them over processes, clip,
        read the sums and the gradient norm from the device in one transfer, refuse a non-finite loss or gradient
        norm (before the weights change), step, zero the gradients.
        Returns (the sums over all processes, the gradient norm before clipping)."""
        grad_norm = sharding.total_norm(torch.nn.utils.clip_grad_norm_(
            [p for p in self.model.parameters() if p.requires_grad], self.train.max_grad_norm or float("inf")))
        sums = all_reduce_sum(sums.detach().to(torch.float64), self.world)
        *values, norm = torch.cat([sums, grad_norm.detach().reshape(1).to(sums)]).tolist()
        if not math.isfinite(values[0]) or not math.isfinite(norm):
            last = ckpt.complete_checkpoints(self.ckpt_dir)
            raise NonFiniteLossError.at_step(step + 1, math.isfinite(values[0]), last[-1] if last else None)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return values, norm

    def resume(self, config_json: dict) -> TrainState | None:
        """Load the newest complete checkpoint (weights, optimizer, scheduler, RNG) and return its state, noting
        what changed in the config since; None when there is none."""
        found = ckpt.complete_checkpoints(self.ckpt_dir)
        if not found:
            self.report.note(f"--resume: no complete checkpoint in {self.ckpt_dir}; starting from step 0")
            return None
        parts = ckpt.read_checkpoint(found[-1])
        sharding.load_model_state(self.module, self.model, parts["model"], self.fsdp)
        sharding.load_optimizer_state(self.module, self.optimizer, parts["optimizer"], self.fsdp)
        self.scheduler.load_state_dict(parts["scheduler"])
        ckpt.set_rng_state(parts["rng"])
        state = TrainState.from_json(parts["trainer_state"])
        self.report.note(f"resumed from {found[-1]} (step {state.step})")
        restore_peak_lr(self.optimizer, self.scheduler, self.train, state.step, self.schedule.warmup_steps,
                        self.schedule.total_steps)
        for change in config_changes(state.config, config_json):
            self.report.note(f"config changed since the checkpoint: {change} (the new value is used)")
        return state

    def save_checkpoint(self, state: TrainState) -> None:
        """Checkpoint `state.step` (gathered collectively under FSDP; written by the main process)."""
        weights = sharding.model_state(self.module, self.model, self.fsdp)
        optim = sharding.optimizer_state(self.module, self.optimizer, self.fsdp)
        if self.world.is_main:
            ckpt.write_checkpoint(self.ckpt_dir, state.step, weights, optim, self.scheduler.state_dict(),
                                  state.to_json(), self.train.keep_last)

    def save_best(self) -> None:
        weights = sharding.model_state(self.module, self.model, self.fsdp)  # collective under FSDP
        if self.world.is_main:
            ckpt.write_best(self.ckpt_dir, weights)

    def load_best(self) -> None:
        sharding.load_model_state(self.module, self.model, ckpt.read_best(self.ckpt_dir), self.fsdp)

    def is_validation_step(self, step: int) -> bool:
        return step % self.train.eval_every == 0 or step == self.schedule.total_steps

    def is_checkpoint_step(self, state: TrainState) -> bool:
        return state.step % self.train.save_every == 0 or state.early_stopped

    def end_step(self, state: TrainState, row: dict, metrics, config_json: dict) -> None:
        """After an optimizer step (and its validation): log the row, move the progress bar, checkpoint."""
        state.config = config_json
        if state.step % self.train.log_every == 0 or "val_loss" in row:
            metrics.log(row)
        self.report.step(row)
        if self.is_checkpoint_step(state):
            self.save_checkpoint(state)
        barrier(self.world)

    def end_run(self, summary: dict, metrics) -> None:
        """Close the logs, print the summary (main process) and leave the process group."""
        if self.world.is_main:
            metrics.close()
            self.report.summary(summary)
        barrier(self.world)
        shutdown(self.world)
