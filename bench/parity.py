"""Loss parity on one identical micro-batch: the mean loss per trained token through every loss path.

The reference is transformers' own `model(input_ids, attention_mask, labels).loss` on a padded batch. The
other paths are sftkit's `CausalLMLoss` (packed with varlen attention, and padded) and TRL's
`SFTTrainer.compute_loss` on batches built by TRL's own collator (padded, and padding-free). All run on the
same weights, in training mode (dropout is in the LoRA branch only, and absent here), without gradients.
Every path must agree with the reference within `tolerance` (relative).
"""

from __future__ import annotations

import torch

from bench.common import RunSpec

TOLERANCE = 1e-3


def run_parity(spec: RunSpec, tolerance: float = TOLERANCE) -> dict:
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from bench.worker import load_for_trl, ordered_rows, trl_trainer
    from sftkit.training.attention import register
    from sftkit.data.dataset import TokenizedExample
    from sftkit.data.batching import collate
    from sftkit.training.loss import CausalLMLoss

    rows = ordered_rows(spec)
    batch_rows = rows[:spec.micro_batch_size]  # the first micro-batch of every contender but TRL packing
    model, tokenizer = load_for_trl(spec)
    pad_id = tokenizer.pad_token_id
    losses = {}
    model.train()
    with torch.no_grad():
        padded = collate([TokenizedExample(r["input_ids"], r["labels"], "bench", i) for i, r in enumerate(batch_rows)],
                         False, pad_id)
        labels = torch.full_like(padded.input_ids, -100)
        for i, r in enumerate(batch_rows):
            labels[i, :len(r["labels"])] = torch.tensor(r["labels"])
        reference = float(model(input_ids=padded.input_ids, attention_mask=padded.attention_mask,
                                labels=labels).loss)
        losses["transformers (model(labels=...).loss)"] = reference

        spec_trl = RunSpec(**{**spec.__dict__, "method": "full"})  # parity needs no adapter
        trainer = trl_trainer(spec_trl, model, tokenizer, rows, probe=None, max_steps=1)
        for name, collator in (("trl padded (defaults)", trainer.data_collator),
                               ("trl padding-free", DataCollatorForLanguageModeling(pad_id, padding_free=True))):
            inputs = collator([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in batch_rows])
            losses[name] = float(trainer.compute_loss(trainer.model, inputs))

        examples = [TokenizedExample(r["input_ids"], r["labels"], "bench", i) for i, r in enumerate(batch_rows)]
        sft_loss = CausalLMLoss(model)
        model.config._attn_implementation = register()
        for name, packing in (("sftkit packed (varlen attention)", True), ("sftkit padded", False)):
            batch = collate(examples, packing, pad_id)
            losses[name] = float(sft_loss(batch)) / batch.num_trained_tokens
    gaps = {name: abs(value - reference) / abs(reference) for name, value in losses.items()}
    return {"losses": losses, "relative_gaps": gaps, "max_relative_gap": max(gaps.values()),
            "tolerance": tolerance, "passed": max(gaps.values()) <= tolerance,
            "num_examples": len(batch_rows), "num_trained_tokens": int((labels[:, 1:] != -100).sum())}
