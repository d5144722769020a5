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
from sftkit.training.loss import CausalLMLoss, ce_sum
from sftkit.models import unwrap

LOSS_TYPES = ("sigmoid", "ipo")
STAT_KEYS = ("loss", "reward_accuracy", "reward_margin", "chosen_logp", "rejected_logp")


def collate_pairs(pairs, packing: bool, pad_id: int, pad_to_multiple: int = 1) -> MicroBatch:
    """One micro-batch of 2B sequences: chosen replies of `pairs` (TokenizedPair) first, then rejected."""
    return collate([p.chosen for p in pairs] + [p.rejected for p in pairs], packing, pad_id, pad_to_multiple)


class SequenceLogProbs(CausalLMLoss):
    """`forward(batch)` -> (summed log-probability, number of trained tokens) per sequence; DDP wraps this.

    The decoder pass is CausalLMLoss's (packed varlen or padded); only the reduction differs. The trained
    positions come in sequence order, so each sequence's are one slice, sized on the host.
    """

    def forward(self, batch: MicroBatch) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, targets = self.trained_hidden(batch)
        head = unwrap(self.model).get_output_embeddings()
        sizes = batch.trained_per_example
        logps = torch.stack([-ce_sum(h, head, t) for h, t in zip(hidden.split(sizes), targets.split(sizes))])
        return logps, torch.tensor(sizes, dtype=logps.dtype, device=logps.device)


@dataclass
class PairStats:
    """Per-pair values of one micro-batch (summed log-probabilities, rewards, loss)."""

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    chosen_logps: torch.Tensor
    rejected_logps: torch.Tensor

    def sum_tensor(self) -> torch.Tensor:
        """Sums over pairs of (loss, reward accuracy, reward margin, chosen logp, rejected logp), on the device
        (divided by the number of pairs of the step or split by the caller)."""
        margin = self.chosen_rewards - self.rejected_rewards
        return torch.stack([self.losses.detach().sum(), (margin > 0).float().sum(), margin.detach().sum(),
                            self.chosen_logps.detach().sum(), self.rejected_logps.detach().sum()]).double()

    def sums(self) -> dict[str, float]:
        """`sum_tensor` read into a dict keyed as STAT_KEYS."""
        return dict(zip(STAT_KEYS, self.sum_tensor().tolist()))


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
