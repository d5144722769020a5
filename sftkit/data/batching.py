"""Micro-batches: packed (one row of concatenated examples, no padding) or padded.

Packed rows carry `position_ids` restarting at 0 for each example and the per-example lengths
(`doc_lens`), which `sftkit.training.attention` uses to run causal attention separately per example: the result is
exactly that of the examples run one by one, with no padding tokens at all. Labels are shifted per example
before concatenation, so no token is ever trained to predict the first token of the next example.

Everything the device needs to know about a batch's layout is built here, on the host, so a training step never
waits on the device to learn a size: `cu_seqlens` and a bucketed `max_seqlen` for the varlen attention kernel,
and `trained_index`, the flat positions whose targets are trained (the loss gathers hidden states there).
`pad_to_multiple` (regional compile) ends a packed row with one ignored pad document so that row lengths repeat.
"""

from __future__ import annotations

import itertools
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
    doc_lens: list[int] | None  # packed batches only; a pad document, if any, is the last
    num_examples: int
    trained_index: torch.Tensor | None = None  # [trained tokens] flat positions in [rows * tokens] with a target
    trained_per_example: list[int] | None = None  # trained tokens of each example, in order
    cu_seqlens: torch.Tensor | None = None  # packed: int32 [documents + 1] document starts, then the row length
    max_seqlen: int | None = None  # packed: longest document, rounded up to a power of two (>= 16)
    num_pad_tokens: int = 0  # packed: length of the ignored pad document

    def __post_init__(self):
        if self.trained_index is None:  # built by hand (tests, tools): derive what collate would have built
            self.trained_index = _trained_index(self.target_ids)
        # counted now, on the host: after `to_device` a count would wait for the device
        self._num_tokens = (int(self.input_ids.numel()) - self.num_pad_tokens if self.attention_mask is None
                            else int(self.attention_mask.sum()))

    @property
    def num_trained_tokens(self) -> int:
        return int(self.trained_index.numel())

    @property
    def num_tokens(self) -> int:
        """Non-padding tokens."""
        return self._num_tokens

    @property
    def num_padding_tokens(self) -> int:
        return int(self.input_ids.numel()) - self.num_tokens


def _shifted(labels: list[int]) -> list[int]:
    return labels[1:] + [IGNORE_INDEX]


def max_seqlen_bucket(longest: int) -> int:
    """`longest` rounded up to a power of two (at least 16): the kernel's max_seqlen takes few distinct values,
    so a compiled graph that depends on it is reused."""
    return max(16, 1 << (longest - 1).bit_length())


def collate(examples, packing: bool, pad_id: int, pad_to_multiple: int = 1) -> MicroBatch:
    """Build one micro-batch from tokenised examples (objects with `input_ids` and `labels`).

    pad_to_multiple: packed rows only; the row is completed to a multiple of it by one pad document (pad
    tokens, positions from 0, no trained target), which attends only to itself.
    """
    shifted = [_shifted(ex.labels) for ex in examples]
    trained_per_example = [sum(t != IGNORE_INDEX for t in row) for row in shifted]
    if packing:
        ids, targets, positions, lens = [], [], [], []
        for ex, row in zip(examples, shifted):
            ids += ex.input_ids
            targets += row
            positions += range(len(ex.input_ids))
            lens.append(len(ex.input_ids))
        num_pad = -len(ids) % pad_to_multiple
        if num_pad:
            ids += [pad_id] * num_pad
            targets += [IGNORE_INDEX] * num_pad
            positions += range(num_pad)
        doc_lens = lens + ([num_pad] if num_pad else [])
        cu_seqlens = torch.tensor([0, *itertools.accumulate(doc_lens)], dtype=torch.int32)
        target_ids = torch.tensor([targets])
        return MicroBatch(torch.tensor([ids]), target_ids, torch.tensor([positions]), None, doc_lens, len(examples),
                          _trained_index(target_ids), trained_per_example, cu_seqlens,
                          max_seqlen_bucket(max(doc_lens)), num_pad)
    ids, mask = pad_rows([ex.input_ids for ex in examples], pad_id)
    targets, _ = pad_rows(shifted, IGNORE_INDEX)
    positions = torch.arange(ids.shape[1]).unsqueeze(0).expand(len(examples), -1).contiguous()
    return MicroBatch(ids, targets, positions, mask, None, len(examples), _trained_index(targets),
                      trained_per_example)


def _trained_index(target_ids: torch.Tensor) -> torch.Tensor:
    return (target_ids.reshape(-1) != IGNORE_INDEX).nonzero().squeeze(1)


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
    for name in ("input_ids", "target_ids", "position_ids", "attention_mask", "trained_index", "cu_seqlens"):
        value = getattr(batch, name, None)
        if value is not None:
            setattr(batch, name, value.to(device, non_blocking=True))
    return batch
