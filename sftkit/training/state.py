"""What a run knows about its own progress: the `TrainState` dataclass both recipes carry from step to step,
checkpoint to checkpoint (saved as `trainer_state.json`), and the early-stopping rule that updates it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class TrainState:
    """Progress of one run; everything a resumed run needs besides weights, optimizer, scheduler and RNG.

    Counters are totals since step 0 (a resumed run continues them). `initial_val` / `best_val` hold every
    validation statistic where a recipe has more than the loss (DPO's reward accuracy and margin).
    """

    step: int = 0
    trained_tokens: int = 0
    trained_examples: int = 0
    train_seconds: float = 0.0
    initial_val_loss: float | None = None
    best_val_loss: float | None = None
    best_step: int = 0
    initial_val: dict | None = None
    best_val: dict | None = None
    evals_without_improvement: int = 0
    early_stopped: bool = False
    stopped_step: int | None = None
    config: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TrainState:
        """Read `trainer_state.json`; keys this version does not know are ignored, missing ones take defaults
        (`trained_pairs`, the name DPO checkpoints of sftkit 0.1 used, is read as `trained_examples`)."""
        data = dict(data)
        if "trained_pairs" in data:
            data.setdefault("trained_examples", data.pop("trained_pairs"))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def record_initial_validation(self, stats: dict) -> None:
        """The validation before any step; it is also the best so far (the starting weights are `best/`)."""
        self.initial_val = self.best_val = stats
        self.initial_val_loss = self.best_val_loss = stats["loss"]

    def record_validation(self, stats: dict, min_delta: float, patience: int | None) -> bool:
        """Update the best and the early-stopping count with a validation at `self.step`; True when it improved
        on the best by more than `min_delta` (the caller then saves these weights as the best)."""
        if stats["loss"] < self.best_val_loss - min_delta:
            self.best_val_loss, self.best_val, self.best_step = stats["loss"], stats, self.step
            self.evals_without_improvement = 0
            return True
        self.evals_without_improvement += 1
        if patience and self.evals_without_improvement >= patience:
            self.early_stopped, self.stopped_step = True, self.step
        return False
