"""Load conversations from any supported source, tokenise them with labels, apply the length policy, split.

Nothing is dropped silently: every skipped row is counted by reason in a `DataReport` and, when asked,
written to a rejects file with its source, line and reason.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sftkit.data.formats import FORMATS, detect_format, to_messages
from sftkit.data.rows import RowError
from sftkit.data.readers import iter_rows
from sftkit.data.rows import BadRow, Row
from sftkit.data.chat_labels import IGNORE_INDEX, TemplateError, ensure_chat_template, tokenize_conversation
from sftkit.errors import UserError


@dataclass
class Example:
    """A validated conversation and where it came from. `raw` is the row exactly as read."""

    messages: list[dict]
    source: str
    line: int
    raw: dict = field(default_factory=dict)
    context: dict = field(default_factory=dict)  # reader-supplied context the row needs (BIG-bench task prefix)


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    source: str
    line: int

    @property
    def num_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def num_trained_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


class NoUsableRowsError(UserError):
    """Every row was bad; `report` holds them, so a caller can still write the rejects that explain it."""

    def __init__(self, message: str, report: DataReport):
        super().__init__(message)
        self.report = report


@dataclass
class DataReport:
    """Counts of what was read, kept and skipped (by reason), plus the rejected rows themselves."""

    rows_read: int = 0
    formats: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    rejects: list[dict] = field(default_factory=list)
    over_max_length: int = 0  # examples longer than max_length before the policy (truncated + dropped)
    truncated: int = 0

    def reject(self, reason: str, message: str, source: str, line: int, row) -> None:
        self.skipped[reason] += 1
        self.rejects.append({"source": source, "line": line, "reason": reason, "message": message, "row": row})

    def bad_row(self, on_bad_row: str, reason: str, message: str, source: str, line: int, row) -> None:
        """A row that cannot be used: raise `file:line: message` (on_bad_row="error"), else count and keep it."""
        if on_bad_row == "error":
            raise UserError(f"{message} (or run with --skip-bad-rows)", source, line)
        self.reject(reason, message, source, line, row)

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())

    def counts(self) -> dict:
        """The skip and truncation counts a run's summary.json reports."""
        return {"rows_skipped": self.rows_skipped, "skipped_by_reason": dict(self.skipped),
                "num_truncated": self.truncated}

    def skipped_text(self) -> str:
        """`skipped N (reason: n, ...), truncated M` for start-up tables."""
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items()) if v)
        return f"skipped {self.rows_skipped}" + (f" ({reasons})" if reasons else "") + f", truncated {self.truncated}"

    def write_rejects(self, path: str | Path) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            for item in self.rejects:
                # default=str: Parquet and hub rows may hold dates or bytes, which JSON cannot encode
                handle.write(json.dumps(item, ensure_ascii=False, default=str) + "\n")


def read_rows(specs: str | list[str], on_bad_row: str, report: DataReport) -> Iterator[Row]:
    """Every parseable row of every source, counted in `report`; unparseable rows go to `report.bad_row`."""
    for spec in [specs] if isinstance(specs, str) else list(specs):
        for row in iter_rows(spec):
            report.rows_read += 1
            if isinstance(row, BadRow):
                report.bad_row(on_bad_row, row.reason, row.message, row.source, row.line, row.raw)
                continue
            yield row


def load_conversations(specs: str | list[str], fmt: str = "auto", on_bad_row: str = "error",
                       report: DataReport | None = None) -> tuple[list[Example], DataReport]:
    """Read and validate every row of every source.

    Args:
        specs: file, directory, `bigbench:TASK` or hub dataset id (or a list of them).
        fmt: `auto` (detected per file from its first recognisable row) or a name from `formats.FORMATS`.
        on_bad_row: `error` raises at the first bad row (naming file and line); `skip` counts and keeps going.

    Raises:
        UserError: a bad row with `on_bad_row="error"`, or no usable rows at all.
    """
    if fmt != "auto" and fmt not in FORMATS:
        raise UserError(f"unknown data format {fmt!r}: use auto, {', '.join(FORMATS)}")
    report = report or DataReport()
    examples: list[Example] = []
    # Detected once per file from its first recognisable row, so that a row of that file missing a field is
    # reported as such rather than as an unknown schema; a directory may mix files of different formats.
    source_formats: dict[str, str] = {}
    for row in read_rows(specs, on_bad_row, report):
        row_fmt = fmt if fmt != "auto" else source_formats.get(row.source) or detect_format(row.data)
        if fmt == "auto" and row_fmt:
            source_formats.setdefault(row.source, row_fmt)
        try:
            messages = to_messages(row, row_fmt or "auto")
        except RowError as exc:
            report.bad_row(on_bad_row, exc.reason, str(exc), row.source, row.line, row.data)
            continue
        report.formats[row_fmt] += 1
        examples.append(Example(messages, row.source, row.line, row.data, row.extra))
    if not examples:
        raise NoUsableRowsError(f"no usable rows in {specs} ({report.rows_read} read, {report.rows_skipped} "
                                f"skipped: {dict(report.skipped)}); fix the data", report)
    return examples, report


def tokenize_examples(tokenizer, examples: list[Example], max_length: int, overlong: str = "truncate",
                      train_on: str = "all", report: DataReport | None = None,
                      ) -> tuple[list[TokenizedExample], DataReport]:
    """Tokenise with assistant-only labels and apply the `max_length` policy.

    `truncate` keeps the first `max_length` tokens (and the labels inside them); `drop` removes the example
    (reason `too_long`). An example left with no trained token is dropped (reason `no_trained_tokens`): it
    would add nothing but padding to the loss normaliser. `report.truncated` counts truncated examples kept;
    `report.over_max_length` counts every example over the limit.
    """
    if overlong not in ("truncate", "drop"):
        raise UserError(f"unknown overlong policy {overlong!r}: use truncate or drop")
    if train_on not in ("all", "last"):
        raise UserError(f"unknown train_on {train_on!r}: use all or last")
    report = report or DataReport()
    ensure_chat_template(tokenizer)
    out = []
    for ex in examples:
        try:
            tok = tokenize_conversation(tokenizer, ex.messages, train_on)
        except TemplateError as exc:
            raise UserError(str(exc), ex.source, ex.line) from None
        ids, labels = tok.input_ids, tok.labels
        is_overlong = len(ids) > max_length
        if is_overlong:
            report.over_max_length += 1
            if overlong == "drop":
                report.reject("too_long", f"{len(ids)} tokens > max_length {max_length}", ex.source, ex.line, ex.raw)
                continue
            ids, labels = ids[:max_length], labels[:max_length]
        if all(x == IGNORE_INDEX for x in labels):
            if not is_overlong:  # the template produced no assistant span: a template bug, never silently skipped
                raise UserError(f"the chat template of {getattr(tokenizer, 'name_or_path', 'the tokenizer')} "
                                "marks no assistant token in this conversation; check the template",
                                ex.source, ex.line)
            report.reject("no_trained_tokens", f"no assistant token within the first {max_length} tokens (the "
                          "prompt fills max_length): raise max_length or shorten the prompt",
                          ex.source, ex.line, ex.raw)
            continue
        report.truncated += is_overlong
        out.append(TokenizedExample(ids, labels, ex.source, ex.line))
    return out, report


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int) -> tuple[list, list, list]:
    """Seeded disjoint (train, val, test) index lists; val and test get at least one item when their fraction > 0."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    if n_test + n_val >= n:
        raise UserError(f"only {n} examples: too few for val_fraction={val_fraction} and test_fraction="
                        f"{test_fraction}; lower them or add data")
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return sorted(train), sorted(val), sorted(test)


def load_splits(data_cfg, seed: int, load, api_name: str) -> tuple[list, list, list]:
    """(train, val, test) items of a recipe's data section: `load(spec)` reads `train_path`, split seeded by
    `val_fraction` / `test_fraction` unless `val_path` / `test_path` name their own data (a section without
    test fields has no test split); at most `max_examples` train items, seeded.

    Raises:
        UserError: `train_path` is not set (`api_name` is the Python function that takes data in memory).
    """
    if not data_cfg.train_path:
        raise UserError(f"data.train_path is not set: point it at the training data, or pass train_data= to "
                        f"{api_name}")
    items = load(data_cfg.train_path)
    test_path, test_fraction = getattr(data_cfg, "test_path", None), getattr(data_cfg, "test_fraction", 0.0)
    train_idx, val_idx, test_idx = split_indices(len(items), 0.0 if data_cfg.val_path else data_cfg.val_fraction,
                                                 0.0 if test_path else test_fraction, seed)
    train = [items[i] for i in train_idx]
    val = load(data_cfg.val_path) if data_cfg.val_path else [items[i] for i in val_idx]
    test = load(test_path) if test_path else [items[i] for i in test_idx]
    if data_cfg.max_examples and len(train) > data_cfg.max_examples:
        train = random.Random(seed).sample(train, data_cfg.max_examples)
    return train, val, test
