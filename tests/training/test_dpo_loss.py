"""DPO/IPO loss arithmetic and per-sequence log-probabilities (packed and padded) against a plain forward pass."""

from __future__ import annotations

import math

import pytest
import torch

from sftkit.training.attention import register
from sftkit.data.dataset import TokenizedExample
from sftkit.data.preferences import PreferencePair, tokenize_pairs
from sftkit.training.dpo_loss import SequenceLogProbs, collate_pairs, preference_loss
from sftkit.data.chat_labels import IGNORE_INDEX


def test_sigmoid_loss_by_hand():
    # h = (-1 - -2) - (-3 - -2) = 2; loss = -log sigmoid(0.1 * 2) = log(1 + e^-0.2)
    stats = preference_loss(torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -2.0]), torch.tensor([2.0, 4.0]), 0.1)
    assert float(stats.losses[0]) == pytest.approx(0.598138869381592, abs=1e-7)
    assert float(stats.chosen_rewards[0]) == pytest.approx(0.1)
    assert float(stats.rejected_rewards[0]) == pytest.approx(-0.1)
    sums = stats.sums()
    assert sums["reward_accuracy"] == 1.0
    assert sums["reward_margin"] == pytest.approx(0.2)
    assert (sums["chosen_logp"], sums["rejected_logp"]) == (-1.0, -3.0)


def test_ipo_loss_by_hand():
    # per-token: policy (-0.5, -0.75), reference (-1, -0.5); h = 0.5 - (-0.25) = 0.75; (0.75 - 1/(2*0.1))^2
    stats = preference_loss(torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -2.0]), torch.tensor([2.0, 4.0]), 0.1,
                            "ipo")
    assert float(stats.losses[0]) == pytest.approx((0.75 - 5.0) ** 2)
    assert float(stats.chosen_rewards[0]) == pytest.approx(0.1 * 0.5)


def test_equal_policy_and_reference_give_ln2_and_zero_accuracy():
    logps = torch.tensor([-5.0, -7.0, -9.0, -2.0, -3.0, -4.0])
    stats = preference_loss(logps, logps.clone(), torch.ones(6), 0.1)
    assert stats.losses.tolist() == pytest.approx([math.log(2)] * 3, abs=1e-7)
    assert stats.sums()["reward_accuracy"] == 0.0  # ties are not counted as correct


def _pairs(tokenizer):
    pairs = [PreferencePair([{"role": "user", "content": "Name a colour."}], "Blue.", "I will not say.", "x", 1),
             PreferencePair([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
                            "4, of course, as everyone knows.", "5", "x", 2)]
    return tokenize_pairs(tokenizer, pairs, 512)[0]


def _manual_logp(model, example: TokenizedExample) -> float:
    ids = torch.tensor([example.input_ids])
    logprobs = torch.log_softmax(model(ids).logits[0].double(), -1)
    total = 0.0
    for t in range(len(example.input_ids) - 1):
        if example.labels[t + 1] != IGNORE_INDEX:
            total += float(logprobs[t, example.input_ids[t + 1]])
    return total


@pytest.mark.parametrize("packing", [True, False])
def test_sequence_logprobs_match_plain_forward(tokenizer, tiny_model, packing):
    tiny_model.config._attn_implementation = register() if packing else "sdpa"
    toks = _pairs(tokenizer)
    batch = collate_pairs(toks, packing, tokenizer.pad_token_id)
    with torch.no_grad():
        logps, counts = SequenceLogProbs(tiny_model).eval()(batch)
    sequences = [p.chosen for p in toks] + [p.rejected for p in toks]
    tiny_model.config._attn_implementation = "sdpa"
    with torch.no_grad():
        expected = [_manual_logp(tiny_model, s) for s in sequences]
    assert logps.tolist() == pytest.approx(expected, rel=1e-4)
    assert counts.tolist() == [s.num_trained_tokens for s in sequences]
    assert batch.trained_per_example == [s.num_trained_tokens for s in sequences]  # the host-side sizes
