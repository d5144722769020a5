"""Micro-batches: packed (one row of concatenated examples, no padding) or padded.

Packed rows carry `position_ids` restarting at 0 for each example and the per-example lengths
(`doc_lens`), which `sftkit.training.attention` uses to run causal attention separately per example: the result is
exactly that of the examples run one by one, with no padding tokens at all. Labels are shifted per example
before concatenation, so no token is ever trained to predict the first token of the next example.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from sftkit.data.chat_labels import IGNORE_INDEX


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # [rows, tokens]
    target_ids: torch.Tensor  # [rows, tokens], already shifted: target of position t is token t+1
    position_ids: torch.Tensor
    attention_mask: torch.Tensor | None  # padded batches only
    doc_lens: list[int] | None  # packed batches only
    num_examples: int

    @property
    def num_trained_tokens(self) -> int:
        return int((self.target_ids != IGNORE_INDEX).sum())

    @property
    def num_tokens(self) -> int:
        """Non-padding tokens."""
        if self.attention_mask is None:
            return int(self.input_ids.numel())
        return int(self.attention_mask.sum())

    @property
    def num_padding_tokens(self) -> int:
        return int(self.input_ids.numel()) - self.num_tokens


def _shifted(labels: list[int]) -> list[int]:
    return labels[1:] + [IGNORE_INDEX]


def collate(examples, packing: bool, pad_id: int) -> MicroBatch:
    """Build one micro-batch from tokenised examples (objects with `input_ids` and `labels`)."""
    if packing:
        ids, targets, positions, lens = [], [], [], []
        for ex in examples:
            ids += ex.input_ids
            targets += _shifted(ex.labels)
            positions += range(len(ex.input_ids))
            lens.append(len(ex.input_ids))
        return MicroBatch(torch.tensor([ids]), torch.tensor([targets]), torch.tensor([positions]), None, lens,
                          len(examples))
    ids, mask = pad_rows([ex.input_ids for ex in examples], pad_id)
    targets, _ = pad_rows([_shifted(ex.labels) for ex in examples], IGNORE_INDEX)
    positions = torch.arange(ids.shape[1]).unsqueeze(0).expand(len(examples), -1).contiguous()
    return MicroBatch(ids, targets, positions, mask, None, len(examples))


def pad_rows(rows: list[list[int]], pad_id: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """`(input_ids, attention_mask)` for token lists padded to the longest; `left` for batched generation."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        span = slice(width - len(r), width) if left else slice(0, len(r))
        ids[i, span] = torch.tensor(r, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def longest_first(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices in batches of `batch_size`, longest first, so each batch pads little; callers put results back
    in input order."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def epoch_order(num_examples: int, seed: int, epoch: int) -> list[int]:
    """The seeded example order of an epoch; depends only on (seed, epoch), never on model init."""
    order = list(range(num_examples))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    return order


def step_indices(order: list[int], step_in_epoch: int, examples_per_step: int) -> list[int]:
    """Example indices of one optimizer step. The last step of an epoch may be partial (never dropped)."""
    start = step_in_epoch * examples_per_step
    return order[start:start + examples_per_step]


def steps_per_epoch(num_examples: int, examples_per_step: int) -> int:
    return -(-num_examples // examples_per_step)


def split_step(indices: list[int], micro_batch_size: int, world_size: int, rank: int) -> list[list[int]]:
    """This rank's micro-batches of a step: rank r takes every world_size-th micro-batch.

    The global step always contains the same examples, whatever the micro-batch size, accumulation or
    number of processes, so the normalised update is the same.
    """
    chunks = [indices[i:i + micro_batch_size] for i in range(0, len(indices), micro_batch_size)]
    return [c for i, c in enumerate(chunks) if i % world_size == rank]


def to_device(batch: MicroBatch, device) -> MicroBatch:
    """Move a micro-batch's tensors to `device` (in place; a no-op on CPU)."""
    if device.type == "cpu":
        return batch
    for name in ("input_ids", "target_ids", "position_ids", "attention_mask"):
        value = getattr(batch, name, None)
        if value is not None:
            setattr(batch, name, value.to(device, non_blocking=True))
    return batch
