"""Where a DPO policy starts and what it is compared with: a model name or an SFT run directory (its merged/
model, or its adapter merged in or continued), and the precomputed reference log-probability table.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from sftkit.training.attention import register as register_varlen
from sftkit.config import TrainSection
from sftkit.training.distributed import World, barrier
from sftkit.training.dpo_loss import collate_pairs
from sftkit.errors import UserError
from sftkit.models import apply_lora, is_run_dir, load_model, resolve_model_path, run_base_model
from sftkit.recipes.dpo_config import DPOConfig
from sftkit.data.batching import to_device


def start_point(config: DPOConfig) -> dict:
    """Where the policy starts: a model name, or an SFT run's merged/ model or adapter (see dpo.sft_adapter)."""
    name = config.model.name
    if not is_run_dir(name):
        return {"weights": name, "adapter": None, "merge_adapter": False, "continue_adapter": False,
                "tokenizer": name, "base_model": name, "adapter_base": None, "force_merge": False,
                "description": resolve_model_path(name) if name == "default" else name}
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
        return {"weights": base, "adapter": str(adapter), "merge_adapter": False, "continue_adapter": True,
                "tokenizer": tokenizer, "base_model": base, "adapter_base": None, "force_merge": False,
                "description": f"{run} (continuing its adapter on {base})"}
    if merged is not None:
        return {"weights": str(merged), "adapter": None, "merge_adapter": False, "continue_adapter": False,
                "tokenizer": tokenizer, "base_model": str(merged), "adapter_base": str(merged) if lora else None,
                "force_merge": False, "description": f"{merged}"}
    if adapter is None:
        raise UserError(f"{run} has neither merged/ nor adapter/: was the SFT run finished?")
    # The new adapter applies to base + SFT adapter, which exists nowhere on disk: always write merged/.
    return {"weights": base, "adapter": str(adapter), "merge_adapter": True, "continue_adapter": False,
            "tokenizer": tokenizer, "base_model": base, "adapter_base": f"{run} (its adapter merged into {base})"
            if lora else None, "force_merge": lora, "description": f"{run} (adapter merged into {base})"}


def load_policy(config: DPOConfig, start: dict, dtype: torch.dtype, packing: bool):
    """(policy model, reference mode). The adapter of an SFT start is merged or kept trainable, per `start`."""
    model = load_model(start["weights"], dtype, config.model.trust_remote_code)
    if packing:
        model.config._attn_implementation = register_varlen()
    if start["adapter"]:
        import warnings

        from peft import PeftModel

        # as in models.apply_lora: peft calls a transformers API deprecated in v5; nothing the user can act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        model = PeftModel.from_pretrained(model, start["adapter"], is_trainable=start["continue_adapter"])
        if start["continue_adapter"]:
            return model, "precomputed"
        model = model.merge_and_unload()
    if config.train.method == "lora":
        lc = config.lora
        model = apply_lora(model, lc.r, lc.alpha, lc.dropout, lc.target_modules, lc.use_dora, lc.use_rslora)
        return model, "precomputed" if config.dpo.precompute_reference else "adapter_disabled"
    return model, "precomputed" if config.dpo.precompute_reference else "frozen_copy"


@torch.no_grad()
def precomputed_reference(path: Path, logps_module, splits: dict, t: TrainSection, pad_id: int, world: World,
                           resume: bool) -> dict[str, torch.Tensor]:
    """{split: [pairs, 2] (chosen, rejected) log-probabilities} of the policy before any step (dropout off).

    Called before a checkpoint is loaded, so the policy is still the starting model. The table is saved with
    the run; resume reuses it and refuses data that no longer matches it.
    """
    if resume and path.exists():
        table = load_file(path)
        if all(table[s].shape[0] == len(pairs) for s, pairs in splits.items()):
            return table
        raise UserError(f"{path} does not match the data ({ {s: int(v.shape[0]) for s, v in table.items()} } pairs):"
                        " the data changed since the run started; start a new run")
    was_training = logps_module.training
    logps_module.eval()
    device = next(logps_module.parameters()).device
    table = {}
    for split, pairs in splits.items():
        rows = []
        for start in range(0, len(pairs), t.micro_batch_size):
            chunk = pairs[start:start + t.micro_batch_size]
            logps, _ = logps_module(to_device(collate_pairs(chunk, t.packing, pad_id), device))
            rows.append(torch.stack([logps[:len(chunk)], logps[len(chunk):]], dim=1).cpu())
        table[split] = torch.cat(rows) if rows else torch.zeros((0, 2))
    logps_module.train(was_training)
    if world.is_main:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in table.items()}, tmp)
        tmp.rename(path)
    barrier(world)
    return table


