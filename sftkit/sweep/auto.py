"""`sftkit sweep --auto`: a search space from the literature for the base config's method, added to `search`
(a key the sweep file names itself wins).

- The learning rate matters most, so it is sampled log-uniformly over a range per method. LoRA's best rate
  sits about 10x above full fine-tuning's (about 15x in very short runs) and barely moves with the rank when
  alpha is fixed (Schulman et al., "LoRA Without Regret", Thinking Machines Lab, 2025); LoRA is also the more
  sensitive of the two to it, and the best choice is close to the highest rate that trains stably (Biderman
  et al., "LoRA Learns Less and Forgets Less", TMLR 2024). Each range spans two decades around the method's
  default (sftkit.config.DEFAULT_LEARNING_RATES, measured as docs/sweep.md describes), so the ratio between
  the two ranges is the 10x of those papers.
- The LoRA rank is a small grid with alpha fixed: with the alpha / r scale the learning rate found for one
  rank holds for the others, and low ranks match full fine-tuning on small supervised sets ("LoRA Without
  Regret"), so the rank is worth a few trials, not many.
- Epochs are no knob: a trial runs for the budget and stops itself by early stopping (`train.patience`,
  added when the base has none), so a sweep never spends trials on epoch counts.
"""

from __future__ import annotations

from sftkit.config import default_learning_rate

AUTO_TRIALS = 6  # with 3 rungs and eta 3: about 2.5x one training of the budget in total, besides the base
AUTO_PATIENCE = 2  # validations without improvement before a trial stops itself
LEARNING_RATE_DECADES = 2.0  # the width of each method's learning-rate range
LORA_RANKS = [8, 16, 32]


def auto_search(method: str, patience: int | None) -> dict:
    """The built-in `search:` entries for `method` (lora, qlora, full), given the base's train.patience."""
    centre = default_learning_rate("sft", method)
    half_width = 10 ** (LEARNING_RATE_DECADES / 2)
    search: dict = {"train.learning_rate": {"log_uniform": [float(f"{centre / half_width:.3g}"),
                                                           float(f"{min(centre * half_width, 1.0):.3g}")]}}
    if method != "full":
        search["lora.r"] = list(LORA_RANKS)
    if not patience:
        search["train.patience"] = AUTO_PATIENCE
    return search
