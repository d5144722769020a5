"""DPO/IPO losses and the per-sequence log-probabilities they compare.

A preference micro-batch holds B pairs as 2B sequences, the B chosen replies first and then the B rejected
ones, packed into one row (varlen attention, no padding) or padded, exactly like SFT micro-batches. The
log-probability of a reply is the sum over its trained tokens (the reply and its end-of-turn token); vocabulary
logits are computed only there, in checkpointed chunks (`sftkit.training.loss.ce_sum`).

Losses, with h = (log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l)):
  sigmoid (DPO, Rafailov et al. 2023):  -log sigmoid(beta * h)
  ipo     (Azar et al. 2023):           (h - 1 / (2 beta))^2, on log-probabilities averaged per reply token
IPO uses per-token averages (as TRL does): its target 1/(2 beta) is a fixed scale that summed log-probabilities of
long replies would swamp. Implicit rewards are beta * (log pi - log ref) of the same quantities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sftkit.data.batching import MicroBatch, collate
from sftkit.data.chat_labels import IGNORE_INDEX
from sftkit.training.loss import CausalLMLoss, ce_sum
from sftkit.models import unwrap

LOSS_TYPES = ("sigmoid", "ipo")


def collate_pairs(pairs, packing: bool, pad_id: int) -> MicroBatch:
    """One micro-batch of 2B sequences: chosen replies of `pairs` (TokenizedPair) first, then rejected."""
    return collate([p.chosen for p in pairs] + [p.rejected for p in pairs], packing, pad_id)


def sequence_index(batch: MicroBatch) -> torch.Tensor:
    """[rows, tokens] index of the sequence each position belongs to (packed: per document; padded: per row)."""
    if batch.doc_lens is not None:
        lens = torch.tensor(batch.doc_lens, device=batch.input_ids.device)
        return torch.repeat_interleave(torch.arange(len(batch.doc_lens), device=lens.device), lens).unsqueeze(0)
    rows, width = batch.input_ids.shape
    return torch.arange(rows, device=batch.input_ids.device).unsqueeze(1).expand(rows, width)


class SequenceLogProbs(CausalLMLoss):
    """`forward(batch)` -> (summed log-probability, number of trained tokens) per sequence; DDP wraps this.

    The decoder pass is CausalLMLoss's (packed varlen or padded); only the reduction differs.
    """

    def forward(self, batch: MicroBatch) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.hidden_states(batch)
        keep = batch.target_ids != IGNORE_INDEX
        seq = sequence_index(batch)[keep]
        hidden, targets = hidden[keep], batch.target_ids[keep]
        head = unwrap(self.model).get_output_embeddings()
        logps = torch.stack([-ce_sum(hidden[seq == s], head, targets[seq == s]) for s in range(batch.num_examples)])
        counts = torch.bincount(seq, minlength=batch.num_examples).to(logps.dtype)
        return logps, counts


@dataclass
class PairStats:
    """Per-pair values of one micro-batch (summed log-probabilities, rewards, loss)."""

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    chosen_logps: torch.Tensor
    rejected_logps: torch.Tensor

    def sums(self) -> dict[str, float]:
        """Sums over pairs (divided by the number of pairs of the step or split by the caller)."""
        margin = self.chosen_rewards - self.rejected_rewards
        return {"loss": float(self.losses.detach().sum()),
                "reward_accuracy": float((margin > 0).float().sum()),
                "reward_margin": float(margin.detach().sum()),
                "chosen_logp": float(self.chosen_logps.detach().sum()),
                "rejected_logp": float(self.rejected_logps.detach().sum())}


def preference_loss(policy_logps: torch.Tensor, reference_logps: torch.Tensor, counts: torch.Tensor, beta: float,
                    loss_type: str = "sigmoid") -> PairStats:
    """Per-pair losses and rewards from per-sequence [2B] log-probabilities (chosen first, then rejected).

    `counts` are the trained tokens per sequence (IPO averages per token). Ties (equal rewards) do not count as
    correct in the reward accuracy, so a policy equal to its reference scores 0, not 0.5.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}: use one of {LOSS_TYPES}")
    half = policy_logps.shape[0] // 2
    policy, reference = policy_logps.float(), reference_logps.float().to(policy_logps.device)
    if loss_type == "ipo":
        scale = counts.float().to(policy.device).clamp(min=1)
        policy, reference = policy / scale, reference / scale
    chosen_rewards = beta * (policy[:half] - reference[:half])
    rejected_rewards = beta * (policy[half:] - reference[half:])
    h = (policy[:half] - reference[:half]) - (policy[half:] - reference[half:])
    losses = -F.logsigmoid(beta * h) if loss_type == "sigmoid" else (h - 1 / (2 * beta)) ** 2
    return PairStats(losses, chosen_rewards.detach(), rejected_rewards.detach(), policy_logps[:half].detach(),
                     policy_logps[half:].detach())
