"""The data section: tokens per training example (re-tokenised from RUN/data/ with the run's own tokenizer and
length policy, so the counts are those training used), trained-token share, skipped rows, truncations."""

from __future__ import annotations

from pathlib import Path

from sftkit.report.charts import Mark, histogram
from sftkit.report.html import Html, join, note, section, table, tag


def token_counts(run: Path, config: dict, kind: str) -> dict | None:
    """`{num_tokens: [...], num_trained_tokens: [...], max_length, unit}` for the training split (SFT: task and
    replay examples; DPO: the prompt with the chosen reply of each pair, the trained tokens being the reply's);
    None when the run has no tokenizer or data."""
    from sftkit.report.collect import read_jsonl

    if not (run / "tokenizer").is_dir() or not (run / "data" / "train.jsonl").is_file():
        return None
    from sftkit.models import load_tokenizer

    d = config.get("data") or {}
    max_length = int(d.get("max_length", 1024))
    tokenizer = load_tokenizer(str(run / "tokenizer"), bool((config.get("model") or {}).get("trust_remote_code")))
    rows = read_jsonl(run / "data" / "train.jsonl") + read_jsonl(run / "data" / "replay.jsonl")
    if kind == "dpo":
        from sftkit.data.preferences import PreferencePair, tokenize_pairs

        pairs = [PreferencePair(r["prompt"], r["chosen"], r["rejected"], r.get("source", ""), r.get("line", 0))
                 for r in rows]
        tokenized, _ = tokenize_pairs(tokenizer, pairs, max_length, d.get("overlong", "truncate"))
        lengths = [p.chosen.num_tokens for p in tokenized]
        trained = [p.chosen.num_trained_tokens for p in tokenized]
        unit = "pair"
    else:
        from sftkit.data.dataset import Example, tokenize_examples

        examples = [Example(r["messages"], r.get("source", ""), r.get("line", 0)) for r in rows]
        tokenized, _ = tokenize_examples(tokenizer, examples, max_length, d.get("overlong", "truncate"),
                                         d.get("train_on", "all"))
        lengths = [t.num_tokens for t in tokenized]
        trained = [t.num_trained_tokens for t in tokenized]
        unit = "example"
    return {"num_tokens": lengths, "num_trained_tokens": trained, "max_length": max_length, "unit": unit}


def data_section(run) -> Html:
    """Tokens per example, trained-token share, skipped rows by reason, truncations, first rejects."""
    s, tokens, parts = run.summary, run.tokens, []
    if tokens and tokens["num_tokens"]:
        total, trained = sum(tokens["num_tokens"]), sum(tokens["num_trained_tokens"])
        n = len(tokens["num_tokens"])
        longest, limit = max(tokens["num_tokens"]), tokens["max_length"]
        # a max_length far beyond the longest example would squeeze the bars into a corner: it is named instead
        marks = [Mark("x", limit, f"max_length {limit}")] if limit <= 1.5 * longest else []
        title = f"tokens per training {tokens['unit']} (n = {n}" + ("" if marks else f", max_length {limit}") + ")"
        parts.append(histogram(title, tokens["num_tokens"], "tokens", marks))
        parts.append(tag("p", f"{n} training {tokens['unit']}s, {total:,} tokens, of which {trained:,} are trained "
                              f"(the loss is taken on them): a trained-token share of {trained / total:.1%}. "
                              f"Median length {sorted(tokens['num_tokens'])[n // 2]:,} tokens, longest "
                              f"{max(tokens['num_tokens']):,}."))
    else:
        parts.append(note("No token counts: the run directory has no tokenizer/ or data/train.jsonl."))
    skipped = s.get("skipped_by_reason") or run.rejects_by_reason
    rows = [["read and kept for training", s.get("num_train_examples", s.get("num_train_pairs", "-"))],
            ["validation", s.get("num_val_examples", s.get("num_val_pairs", "-"))]]
    if "num_test_examples" in s:
        rows.append(["test (held out for compare)", s["num_test_examples"]])
    if s.get("num_replay_examples"):
        rows.append(["replay (general data mixed in)", s["num_replay_examples"]])
    rows.append(["truncated to max_length", s.get("num_truncated", 0)])
    rows += [[f"skipped: {reason}", count] for reason, count in sorted(skipped.items())]
    parts.append(table(["rows", "count"], rows, numeric={1}))
    if run.rejects:
        shown = [[r.get("source", ""), r.get("line", ""), r.get("reason", ""), r.get("message", "")]
                 for r in run.rejects]
        parts.append(tag("h3", "first rejected rows (all in rejects.jsonl)"))
        parts.append(table(["source", "line", "reason", "why"], shown, numeric={1}))
    return section("data", "Data", join(parts))
