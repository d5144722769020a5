"""`sftkit data inspect`: what would be trained, token by token, before any training happens."""

from __future__ import annotations

import statistics

from sftkit.data.dataset import load_conversations, tokenize_examples
from sftkit.data.chat_labels import IGNORE_INDEX, trained_segments


def _quantile(ordered: list[int], q: float) -> int:
    """The nearest-rank quantile of sorted values."""
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def _stats(values: list[int]) -> dict:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    return {"count": len(values), "min": ordered[0], "mean": round(statistics.fmean(values), 1),
            "p50": _quantile(ordered, 0.5), "p95": _quantile(ordered, 0.95), "max": ordered[-1],
            "total": sum(values)}


def inspect_data(data: str | list[str], tokenizer, max_length: int, fmt: str = "auto", on_bad_row: str = "error",
                 overlong: str = "truncate", train_on: str = "all", num_examples: int = 3) -> dict:
    """Statistics and the first `num_examples` examples with their trained spans, as a JSON-ready dict.

    Token statistics describe the examples as they would be trained (after the `max_length` policy); the
    `DataReport` rides along under `_report` (not JSON) for writing rejects.
    """
    examples, report = load_conversations(data, fmt, on_bad_row)
    tokenized, report = tokenize_examples(tokenizer, examples, max_length, overlong, train_on, report)
    shown = []
    for t in tokenized[:num_examples]:
        shown.append({
            "source": t.source,
            "line": t.line,
            "text": tokenizer.decode(t.input_ids),
            "trained_text": trained_segments(tokenizer, t.input_ids, t.labels),
            "num_tokens": t.num_tokens,
            "num_trained_tokens": t.num_trained_tokens,
            "tokens": [[tokenizer.decode([i]), lab != IGNORE_INDEX] for i, lab in zip(t.input_ids, t.labels)],
        })
    return {
        "data": data,
        "tokenizer": tokenizer.name_or_path,
        "formats": dict(report.formats),
        "rows_read": report.rows_read,
        "rows_skipped": report.rows_skipped,
        "skipped_by_reason": dict(report.skipped),
        "examples_kept": len(tokenized),
        "max_length": max_length,
        "overlong_policy": overlong,
        "num_over_max_length": report.over_max_length,
        "num_truncated": report.truncated,
        "prompt_tokens": _stats([t.num_tokens - t.num_trained_tokens for t in tokenized]),
        "trained_tokens": _stats([t.num_trained_tokens for t in tokenized]),
        "total_tokens": _stats([t.num_tokens for t in tokenized]),
        "examples": shown,
        "_report": report,
    }
