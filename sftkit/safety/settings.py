"""`SafetySettings`, the one source of the safety evaluation's defaults (CLI options, the Python API and the
evaluation after training all read them here)."""

from __future__ import annotations

from dataclasses import dataclass

CACHE_VERSION = 1


@dataclass
class SafetySettings:
    """What changes results (in the cache key) and what only changes speed (`*batch_size`)."""

    max_new_tokens: int = 48
    max_prompts: int | None = None  # per prompt set, stratified by category
    hhh: bool = True
    hhh_max_examples: int | None = 100  # of 221, seeded; scoring all 221 takes ~4x the generation time on a CPU
    dtype: str = "float32"
    seed: int = 1234
    batch_size: int = 16
    scoring_batch_size: int = 8
    num_threads: int | None = None  # torch CPU threads; 1 is fastest on a machine shared with other jobs

    def result_settings(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "dtype": self.dtype, "safety_cache": CACHE_VERSION}

    @classmethod
    def given(cls, **values) -> SafetySettings:
        """Settings from the options that were given (None = not given, so the default here applies)."""
        return cls(**{k: v for k, v in values.items() if v is not None})
