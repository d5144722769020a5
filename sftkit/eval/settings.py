"""The one source of every evaluation default: `EvalSettings` (what `sftkit eval` and an Evaluator run with),
`CompareSettings` (what `compare` adds), read by the config's `eval:` section, the CLI options and the Python
API alike. An option left unset anywhere takes its value from here."""

from __future__ import annotations

from dataclasses import dataclass, fields

from sftkit.errors import UserError
from sftkit.eval.metrics import GENERATION_METRICS, parse_extract

# Examples per forgetting-suite task: sized so the whole default suite runs in under 3 minutes on the default
# model on a 2-core CPU (docs/benchmarks.md, "Evaluation"); raise it for tighter intervals.
DEFAULT_SUITE_MAX_EXAMPLES = 50
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class EvalSettings:
    """What changes results (all in the cache key) and what only changes speed (`*batch_size`).

    `scoring_batch_size` is questions (multiple choice) or documents (perplexity) per forward pass. `dtype`
    `auto` resolves as training's `precision: auto` does (sftkit.training.precision.inference_dtype): bfloat16 on
    CPUs with native bf16, else float32; the resolved name is what results are cached and reported under.
    """

    max_new_tokens: int = 32
    metric: str = "normalized_exact_match"
    extract: str | None = None
    dtype: str = "auto"
    generation_batch_size: int = 16
    scoring_batch_size: int = 8
    num_threads: int | None = None  # torch CPU threads; None keeps torch's default (all cores)

    def __post_init__(self):
        if self.metric not in GENERATION_METRICS:
            raise UserError(f"unknown metric {self.metric!r}: use one of {', '.join(GENERATION_METRICS)}")
        parse_extract(self.extract)  # a bad pattern fails now, before any model loads
        if self.dtype not in DTYPES:  # and so does a bad dtype
            raise UserError(f"unknown dtype {self.dtype!r}: use {', '.join(DTYPES)}")
        if self.dtype == "auto":
            from sftkit.training.precision import inference_dtype

            self.dtype = str(inference_dtype("auto")).removeprefix("torch.")

    def result_settings(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "extract": self.extract, "dtype": self.dtype}

    @classmethod
    def given(cls, **values) -> EvalSettings:
        """Settings from the options that were given (None = not given, so the default here applies)."""
        return cls(**{k: v for k, v in values.items() if v is not None})


@dataclass
class CompareSettings:
    """`compare`'s own settings: the k-shot baseline and the forgetting suite."""

    shots: int = 5
    suite_max_examples: int = DEFAULT_SUITE_MAX_EXAMPLES


def field_default(cls, name: str):
    """The default of field `name` of settings class `cls` (for the config and CLI help texts)."""
    return next(f.default for f in fields(cls) if f.name == name)
