"""Where a DPO policy starts and what it is compared with: a model name or an SFT run directory (its merged/
model, or its adapter merged in or continued), and the reference log-probabilities (adapter disabled, a frozen
copy, or a table precomputed before training).
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from sftkit.data.batching import MicroBatch, to_device
from sftkit.errors import UserError
from sftkit.models import is_run_dir, load_model, resolve_model_path, run_base_model
from sftkit.recipes.dpo_config import DPOConfig
from sftkit.training.distributed import World, barrier
from sftkit.training.dpo_loss import SequenceLogProbs, collate_pairs


@dataclass(frozen=True)
class StartPoint:
    """What the policy is loaded from and how it is described in the summary.

    weights: the model loaded first; adapter: an SFT adapter applied on top (merged unless `continue_adapter`);
    base_model / adapter_base: what summary.json and the exported adapter name as their base; force_merge: also
    write merged/ (an adapter trained on base + a merged SFT adapter exists nowhere on disk).
    """

    weights: str
    tokenizer: str
    base_model: str
    description: str
    adapter: str | None = None
    continue_adapter: bool = False
    adapter_base: str | None = None
    force_merge: bool = False


def start_point(config: DPOConfig) -> StartPoint:
    """Where the policy starts: a model name, or an SFT run's merged/ model or adapter (see dpo.sft_adapter)."""
    name = config.model.name
    if not is_run_dir(name):
        return StartPoint(weights=name, tokenizer=name, base_model=name,
                          description=resolve_model_path(name) if name == "default" else name)
    run = Path(name)
    base = run_base_model(run)
    adapter = run / "adapter" if (run / "adapter" / "adapter_config.json").exists() else None
    merged = run / "merged" if (run / "merged" / "config.json").exists() else None
    tokenizer = next((str(p) for p in (run / "tokenizer", merged, adapter)
                      if p is not None and (p / "tokenizer_config.json").exists()), base)  # the run's template
    lora = config.train.method == "lora"
    if lora and config.dpo.sft_adapter == "continue":
        if adapter is None:
            raise UserError(f"dpo.sft_adapter: continue needs {run}/adapter/ (the run has none): use merge")
        return StartPoint(weights=base, tokenizer=tokenizer, base_model=base, adapter=str(adapter),
                          continue_adapter=True, description=f"{run} (continuing its adapter on {base})")
    if merged is not None:
        return StartPoint(weights=str(merged), tokenizer=tokenizer, base_model=str(merged),
                          adapter_base=str(merged) if lora else None, description=f"{merged}")
    if adapter is None:
        raise UserError(f"{run} has neither merged/ nor adapter/: was the SFT run finished?")
    return StartPoint(weights=base, tokenizer=tokenizer, base_model=base, adapter=str(adapter),
                      adapter_base=f"{run} (its adapter merged into {base})" if lora else None, force_merge=lora,
                      description=f"{run} (adapter merged into {base})")


def load_policy(config: DPOConfig, start: StartPoint, dtype: torch.dtype):
    """The starting model with the SFT adapter of `start` merged in, or kept trainable (`continue_adapter`)."""
    model = load_model(start.weights, dtype, config.model.trust_remote_code)
    if start.adapter:
        import warnings

        from peft import PeftModel

        # as in models.apply_lora: peft calls a transformers API deprecated in v5; nothing the user can act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        model = PeftModel.from_pretrained(model, start.adapter, is_trainable=start.continue_adapter)
        if not start.continue_adapter:
            model = model.merge_and_unload()
    return model


class Reference:
    """Log-probabilities of the reference model (the policy at step 0) for a micro-batch.

    mode: `adapter_disabled` (LoRA: the policy with its adapter switched off), `frozen_copy` (full fine-tuning),
    or `precomputed` (a table scored before training; `precompute` fills it).
    """

    def __init__(self, mode: str, policy, policy_module: SequenceLogProbs):
        self.mode = mode
        self.policy = policy
        self.policy_module = policy_module
        self.frozen_module = None
        self.table: dict[str, torch.Tensor] | None = None
        if mode == "frozen_copy":
            self.frozen_module = SequenceLogProbs(copy.deepcopy(policy).requires_grad_(False).eval())

    @classmethod
    def for_policy(cls, config: DPOConfig, start: StartPoint, policy, policy_module: SequenceLogProbs) -> Reference:
        if start.continue_adapter or config.dpo.precompute_reference:
            mode = "precomputed"
        else:
            mode = "adapter_disabled" if config.train.method == "lora" else "frozen_copy"
        return cls(mode, policy, policy_module)

    @torch.no_grad()
    def logps(self, batch: MicroBatch, split: str, indices: list[int]) -> torch.Tensor:
        """[2B] reference log-probabilities of the batch's sequences (chosen first, then rejected)."""
        if self.table is not None:
            rows = self.table[split][indices]
            return torch.cat([rows[:, 0], rows[:, 1]])
        if self.mode == "adapter_disabled":
            with self.policy.disable_adapter():
                return self.policy_module(batch)[0]
        return self.frozen_module(batch)[0]

    @torch.no_grad()
    def precompute(self, path: Path, splits: dict, train, pad_id: int, world: World, resume: bool,
                   autocast=contextlib.nullcontext) -> None:
        """Fill the table {split: [pairs, 2] (chosen, rejected)} with the policy before any step (dropout off),
        in the run's precision (`autocast()`: the context training's forward passes run in).

        Called before a checkpoint is loaded, so the policy is still the starting model. The table is saved with
        the run; resume reuses it and refuses data that no longer matches it.
        """
        if resume and path.exists():
            table = load_file(path)
            if all(table[s].shape[0] == len(pairs) for s, pairs in splits.items()):
                self.table = table
                return
            raise UserError(f"{path} does not match the data ({ {s: int(v.shape[0]) for s, v in table.items()} } "
                            "pairs): the data changed since the run started; start a new run")
        module = self.policy_module
        was_training = module.training
        module.eval()
        device = next(module.parameters()).device
        table = {}
        for split, pairs in splits.items():
            rows = []
            for start in range(0, len(pairs), train.micro_batch_size):
                chunk = pairs[start:start + train.micro_batch_size]
                with autocast():
                    logps, _ = module(to_device(collate_pairs(chunk, train.packing, pad_id), device))
                rows.append(torch.stack([logps[:len(chunk)], logps[len(chunk):]], dim=1).cpu())
            table[split] = torch.cat(rows) if rows else torch.zeros((0, 2))
        module.train(was_training)
        if world.is_main:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            save_file({k: v.contiguous() for k, v in table.items()}, tmp)
            tmp.rename(path)
        barrier(world)
        self.table = table
