"""Instruction-following difficulty (IFD; Li et al., 2024, "From Quantity to Quality").

IFD = loss(reply | instruction) / loss(reply alone), each the mean cross-entropy of the final reply's tokens
(and its end-of-turn token) under the base model. A high IFD means the instruction helps the model little:
the example teaches something; IFD >= 1 means the instruction does not help at all (often a mismatched
pair), so such rows rank last. "Reply alone" keeps the template's assistant header (e.g.
`<|im_start|>assistant\\n`) so that both losses cover the very same token ids.

Both sequences of every row are scored in length-sorted, padded batches of at most `batch_tokens` tokens;
logits are computed only at reply positions, in slices, so the vocabulary-sized matrix never covers a whole
batch.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from sftkit.data.batching import pad_rows
from sftkit.data.chat_labels import IGNORE_INDEX, ensure_chat_template, render, tokenize_conversation

_LOGIT_ROWS = 1024  # reply positions per lm_head slice


def ifd_sequences(tokenizer, messages: list[dict], max_length: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """(conditioned ids, labels, unconditioned ids, labels) for the last assistant reply of a conversation."""
    tok = tokenize_conversation(tokenizer, messages, train_on="last")
    ids, labels = tok.input_ids[:max_length], tok.labels[:max_length]
    reply = [t for t, lab in zip(ids, labels) if lab != IGNORE_INDEX]
    prefix = render(tokenizer, messages[:-1])
    header = render(tokenizer, messages[:-1], add_generation_prompt=True)[len(prefix):]
    header_ids = tokenizer(header, add_special_tokens=False)["input_ids"] if header else []
    uncond = (header_ids + reply)[:max_length]
    uncond_labels = ([IGNORE_INDEX] * len(header_ids) + reply)[:max_length]
    return ids, labels, uncond, uncond_labels


@torch.inference_mode()
def sequence_losses(model, sequences: list[tuple[list[int], list[int]]], pad_id: int, batch_tokens: int
                    ) -> np.ndarray:
    """Mean next-token cross-entropy over the labelled positions of each (ids, labels); NaN if none."""
    model.eval()
    device = next(model.parameters()).device
    head = model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    order = sorted(range(len(sequences)), key=lambda i: (-len(sequences[i][0]), i))
    losses = np.full(len(sequences), np.nan)
    start = 0
    while start < len(order):
        width = len(sequences[order[start]][0])
        size = max(1, batch_tokens // max(1, width))
        batch = order[start:start + size]
        start += len(batch)
        ids, mask = pad_rows([sequences[i][0] for i in batch], pad_id)
        labels, _ = pad_rows([sequences[i][1] for i in batch], IGNORE_INDEX)
        ids, labels, mask = ids.to(device), labels.to(device), mask.to(device)
        hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        targets = labels[:, 1:]
        rows, cols = torch.nonzero(targets != IGNORE_INDEX, as_tuple=True)
        sums = torch.zeros(len(batch), dtype=torch.float64, device=device)
        for lo in range(0, len(rows), _LOGIT_ROWS):
            r, c = rows[lo:lo + _LOGIT_ROWS], cols[lo:lo + _LOGIT_ROWS]
            logits = head(hidden[r, c]).float()
            if softcap:
                logits = torch.tanh(logits / softcap) * softcap
            token_loss = torch.nn.functional.cross_entropy(logits, targets[r, c], reduction="none")
            sums.index_add_(0, r, token_loss.double())
        counts = torch.bincount(rows, minlength=len(batch)).double()
        mean = (sums / counts).cpu().numpy()
        for row, index in enumerate(batch):
            if counts[row] > 0:
                losses[index] = mean[row]
    return losses


def ifd_scores(model, tokenizer, conversations: list[list[dict]], max_length: int, batch_tokens: int = 4096
               ) -> dict:
    """IFD of each conversation's last reply, with both losses and the throughput."""
    ensure_chat_template(tokenizer)
    began = time.perf_counter()
    sequences = []
    for messages in conversations:
        ids, labels, uncond, uncond_labels = ifd_sequences(tokenizer, messages, max_length)
        sequences += [(ids, labels), (uncond, uncond_labels)]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    losses = sequence_losses(model, sequences, pad_id, batch_tokens)
    conditioned, unconditioned = losses[0::2], losses[1::2]
    with np.errstate(divide="ignore", invalid="ignore"):
        ifd = conditioned / unconditioned
    seconds = time.perf_counter() - began
    return {"ifd": ifd, "conditioned_loss": conditioned, "unconditioned_loss": unconditioned,
            "seconds": seconds, "rows_per_second": len(conversations) / seconds if seconds else None}
