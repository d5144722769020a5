"""The loss gathers hidden states at trained positions through an index built on the host; the result is the
boolean-mask gather's exactly (the same elements, in the same order, through the same chunked CE)."""

from __future__ import annotations

import pytest
import torch

from sftkit.data.batching import MicroBatch, collate
from sftkit.data.chat_labels import IGNORE_INDEX
from sftkit.models import unwrap
from sftkit.training.attention import register
from sftkit.training.loss import CausalLMLoss, ce_sum
from tests.helpers import packed_examples


@pytest.mark.parametrize("packing", [True, False])
def test_host_index_loss_equals_mask_loss(tiny_model, packing):
    tiny_model.config._attn_implementation = register() if packing else "sdpa"
    batch = collate(packed_examples([23, 7, 40, 12]), packing, 2)
    module = CausalLMLoss(tiny_model)
    indexed = module(batch)
    indexed.backward()
    grads = {n: p.grad.clone() for n, p in tiny_model.named_parameters()}
    tiny_model.zero_grad(set_to_none=True)

    hidden = module.hidden_states(batch)  # the gather the host index replaces: a boolean mask, sized on the device
    keep = batch.target_ids != IGNORE_INDEX
    masked = ce_sum(hidden[keep], unwrap(tiny_model).get_output_embeddings(), batch.target_ids[keep])
    masked.backward()
    assert torch.equal(indexed, masked)
    for name, p in tiny_model.named_parameters():
        assert torch.equal(grads[name], p.grad), name
    assert batch.num_trained_tokens == int(keep.sum()) == sum(batch.trained_per_example)


def test_hand_built_batch_derives_its_index():
    """A MicroBatch built without collate (tools, tests) gets the same host index collate would build."""
    targets = torch.tensor([[5, IGNORE_INDEX, 7], [IGNORE_INDEX, 9, IGNORE_INDEX]])
    batch = MicroBatch(torch.zeros_like(targets), targets, torch.zeros_like(targets), torch.ones_like(targets), None, 2)
    assert batch.trained_index.tolist() == [0, 2, 4] and batch.num_trained_tokens == 3 and batch.num_tokens == 6
