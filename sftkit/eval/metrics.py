"""Answer metrics, answer extraction and bootstrap confidence intervals.

Every reported number comes with `n` and a 95% percentile-bootstrap interval. Resampling uses a fixed seed,
so the same per-example values always give the same interval.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import numpy as np

from sftkit.errors import UserError

GENERATION_METRICS = ("exact_match", "normalized_exact_match", "contains", "token_f1")
NUM_RESAMPLES = 1000
CONFIDENCE = 0.95


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation (every Unicode `P*` character), collapse whitespace."""
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text.lower())
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when equal after trimming surrounding whitespace (case and punctuation count)."""
    return float(prediction.strip() == reference.strip())


def normalized_exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def contains(prediction: str, reference: str) -> float:
    """1.0 when the normalised reference occurs in the normalised prediction as whole words ("1" is not in "10")."""
    ref = normalize_answer(reference)
    return float(bool(ref) and f" {ref} " in f" {normalize_answer(prediction)} ")


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style F1 over normalised whitespace tokens (multiset overlap)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    overlap = sum((Counter(pred) & Counter(ref)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


_METRIC_FNS = {"exact_match": exact_match, "normalized_exact_match": normalized_exact_match,
               "contains": contains, "token_f1": token_f1}


def score_answer(prediction: str, references: list[str]) -> dict[str, float]:
    """Every generation metric, each the best over the references (any target may match)."""
    return {name: max(fn(prediction, ref) for ref in references) for name, fn in _METRIC_FNS.items()}


def parse_extract(spec: str | None) -> str | re.Pattern | None:
    """`None`/`none`, `first_line`, or `regex:PATTERN` -> what `extract_answer` takes. Bad input raises UserError."""
    if spec is None or spec == "none":
        return None
    if spec == "first_line":
        return spec
    if spec.startswith("regex:"):
        try:
            return re.compile(spec[len("regex:"):], re.DOTALL)
        except re.error as exc:
            raise UserError(f"--extract {spec!r}: invalid regular expression ({exc})") from None
    raise UserError(f"--extract {spec!r}: use first_line or regex:PATTERN (group 1 is the answer if present)")


def extract_answer(text: str, how: str | re.Pattern | None) -> str | None:
    """The answer inside a verbose output; None when a regex finds nothing (scored as an empty answer).

    `first_line`: the first non-blank line. A regex: its first match, group 1 if the pattern has a group.
    """
    if how is None:
        return text
    if how == "first_line":
        return next((line.strip() for line in text.splitlines() if line.strip()), "")
    match = how.search(text)
    if match is None:
        return None
    return match.group(1) if how.groups else match.group(0)


def _resample_indices(n: int, seed: int, num_resamples: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(num_resamples, n))


def _interval(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_ci(values, seed: int = 0, num_resamples: int = NUM_RESAMPLES,
                 confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of `values`."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    idx = _resample_indices(x.size, seed, num_resamples)
    return _interval(x[idx].mean(axis=1), confidence)


def summarize(values, seed: int = 0) -> dict:
    """`{value, n, ci_low, ci_high}` for the mean of per-example values (value None when n is 0)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return {"value": None, "n": 0, "ci_low": None, "ci_high": None}
    low, high = bootstrap_ci(x, seed)
    return {"value": float(x.mean()), "n": int(x.size), "ci_low": low, "ci_high": high}


def summarize_perplexity(nll_sums, num_tokens, seed: int = 0) -> dict:
    """Corpus perplexity exp(sum NLL / sum tokens), resampling whole documents for the interval."""
    nll, tokens = np.asarray(nll_sums, dtype=np.float64), np.asarray(num_tokens, dtype=np.float64)
    if nll.size == 0:
        return {"value": None, "n": 0, "ci_low": None, "ci_high": None}
    idx = _resample_indices(nll.size, seed, NUM_RESAMPLES)
    low, high = _interval(np.exp(nll[idx].sum(1) / tokens[idx].sum(1)), CONFIDENCE)
    return {"value": float(np.exp(nll.sum() / tokens.sum())), "n": int(nll.size), "ci_low": low, "ci_high": high}


def paired_difference(tuned, base, seed: int = 0) -> dict:
    """Mean difference tuned - base on the same examples, with a paired-bootstrap interval.

    Also the relative difference (tuned - base) / base and its interval; `rel*` are None when the base mean
    is 0. Resampling draws example indices once and applies them to both arrays, so the pairing is kept.
    """
    t, b = np.asarray(tuned, dtype=np.float64), np.asarray(base, dtype=np.float64)
    if t.shape != b.shape or t.size == 0:
        raise ValueError(f"paired_difference needs two equal, non-empty arrays (got {t.size} and {b.size})")
    idx = _resample_indices(t.size, seed, NUM_RESAMPLES)
    t_means, b_means = t[idx].mean(1), b[idx].mean(1)
    low, high = _interval(t_means - b_means, CONFIDENCE)
    out = {"abs": float(t.mean() - b.mean()), "ci_low": low, "ci_high": high, "n": int(t.size),
           "rel": None, "rel_ci_low": None, "rel_ci_high": None}
    if b.mean() != 0:
        out["rel"] = float((t.mean() - b.mean()) / b.mean())
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = (t_means - b_means) / b_means
        rel = rel[np.isfinite(rel)]
        if rel.size:
            out["rel_ci_low"], out["rel_ci_high"] = _interval(rel, CONFIDENCE)
    return out


def paired_log_perplexity_difference(tuned: tuple, base: tuple, seed: int = 0) -> dict:
    """Difference in log-perplexity (tuned - base) over the same documents; > 0 means the tuned model is worse.

    `tuned` and `base` are (nll_sums, num_tokens) per document.
    """
    tn, tt = (np.asarray(a, dtype=np.float64) for a in tuned)
    bn, bt = (np.asarray(a, dtype=np.float64) for a in base)
    idx = _resample_indices(tn.size, seed, NUM_RESAMPLES)
    diffs = tn[idx].sum(1) / tt[idx].sum(1) - bn[idx].sum(1) / bt[idx].sum(1)
    low, high = _interval(diffs, CONFIDENCE)
    return {"abs": float(tn.sum() / tt.sum() - bn.sum() / bt.sum()), "ci_low": low, "ci_high": high,
            "n": int(tn.size)}
