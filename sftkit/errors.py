"""User-facing errors: one line naming where the problem is and how to fix it; the CLI exits with code 2."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad config, bad data row, missing file).

    Args:
        message: what is wrong and how to fix it.
        source: file (or dataset id) the problem is in, if any.
        line: 1-based line (JSONL/CSV row) or item index, if any.
    """

    def __init__(self, message: str, source: str | None = None, line: int | None = None):
        self.message = message
        self.source = source
        self.line = line
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.source is not None:
            where = f"{self.source}:{self.line}: " if self.line is not None else f"{self.source}: "
        return where + self.message


class ConfigError(UserError):
    """One or more configuration problems, all reported together; a single one is a single line."""

    def __init__(self, problems: list[str], source: str | None = None, line: int | None = None):
        self.problems = problems
        if len(problems) == 1:
            super().__init__(problems[0], source, line)
            return
        head = f"{len(problems)} problem(s) in the config" + (f" {source}" if source else "")
        super().__init__(head + ":\n  - " + "\n  - ".join(problems))


class NonFiniteLossError(UserError):
    """Training produced NaN/inf; raised before the optimizer step so weights stay intact."""

    @classmethod
    def at_step(cls, step: int, loss_is_finite: bool, last_checkpoint) -> NonFiniteLossError:
        """The error for optimizer step `step` (1-based), naming the last good checkpoint (or none)."""
        what = "gradient norm" if loss_is_finite else "loss"
        return cls(f"non-finite {what} at step {step}; the optimizer step was skipped, weights are intact. Last "
                   f"good checkpoint: {last_checkpoint or 'none'}. Lower train.learning_rate or check the data")
