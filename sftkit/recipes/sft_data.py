"""The SFT recipe's data phase: read the sources, split them (seeded), mix in replay rows, tokenise with
assistant-only labels. `read_splits` is also what `sftkit sweep` uses to fix one split for all its trials.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sftkit.data.dataset import (
    DataReport,
    Example,
    TokenizedExample,
    load_conversations,
    split_indices,
    tokenize_examples,
)
from sftkit.errors import UserError
from sftkit.recipes.sft_config import DataSection, SFTConfig
from sftkit.training.reporter import Reporter


@dataclass
class SFTData:
    """The run's examples: raw splits (written to data/) and the tokenised train/val examples that train."""

    train: list[Example]
    replay: list[Example]
    val: list[Example]
    test: list[Example]
    train_tok: list[TokenizedExample]
    val_tok: list[TokenizedExample]
    num_replay_tok: int
    report: DataReport = field(default_factory=DataReport)


def read_splits(d: DataSection, seed: int, data_report: DataReport) -> tuple[list[Example], list[Example],
                                                                               list[Example]]:
    """(train, val, test) examples: `val_path`/`test_path` when set, else seeded fractions of `train_path`;
    train subsampled to `max_examples` (seeded, in the sampled order)."""
    if not d.train_path:
        raise UserError("data.train_path is not set: point it at the training data, or pass train_data= to "
                        "sftkit.train")
    examples, _ = load_conversations(d.train_path, d.format, d.on_bad_row, data_report)
    train_idx, val_idx, test_idx = split_indices(len(examples), 0.0 if d.val_path else d.val_fraction,
                                                 0.0 if d.test_path else d.test_fraction, seed)
    train_ex = [examples[i] for i in train_idx]
    val_ex = [examples[i] for i in val_idx]
    test_ex = [examples[i] for i in test_idx]
    if d.val_path:
        val_ex, _ = load_conversations(d.val_path, d.format, d.on_bad_row, data_report)
    if d.test_path:
        test_ex, _ = load_conversations(d.test_path, d.format, d.on_bad_row, data_report)
    if d.max_examples and len(train_ex) > d.max_examples:
        train_ex = random.Random(seed).sample(train_ex, d.max_examples)
    return train_ex, val_ex, test_ex


def setup_data(config: SFTConfig, tokenizer, report: Reporter) -> SFTData:
    """Read and split the data (seeded), mix in replay rows, tokenise with assistant-only labels."""
    d, seed = config.data, config.train.seed
    data_report = DataReport()
    train_ex, val_ex, test_ex = read_splits(d, seed, data_report)
    replay = []
    if d.replay_path and d.replay_fraction > 0:
        pool, _ = load_conversations(d.replay_path, "auto", d.on_bad_row, data_report)
        want = round(len(train_ex) * d.replay_fraction / (1 - d.replay_fraction))
        replay = random.Random(seed + 1).sample(pool, min(want, len(pool)))
        if len(replay) < want:
            report.note(f"data.replay_path holds {len(pool)} examples, fewer than the {want} that "
                        f"replay_fraction {d.replay_fraction} asks for; all {len(pool)} are mixed in")

    def tokenize(exs):  # task and replay rows apart, so the counts are of the examples that train
        return tokenize_examples(tokenizer, exs, d.max_length, d.overlong, d.train_on, data_report)[0]

    task_tok, replay_tok = tokenize(train_ex), tokenize(replay)
    val_tok = tokenize(val_ex)
    if not task_tok and not replay_tok:
        raise UserError("no training example has a trained token left; check max_length and the data")
    num_train = len(train_ex) + len(replay)
    length_drops = data_report.skipped["too_long"] + data_report.skipped["no_trained_tokens"]
    if length_drops > 0.5 * (num_train + len(val_ex)):
        raise UserError(f"{length_drops} of {num_train + len(val_ex)} examples were dropped for length; raise "
                        f"data.max_length (now {d.max_length}) or use data.overlong: truncate")
    return SFTData(train_ex, replay, val_ex, test_ex, task_tok + replay_tok, val_tok, len(replay_tok), data_report)


def example_rows(examples: list[Example]) -> list[dict]:
    """Examples as the rows a run directory's `data/*.jsonl` hold (readable back as the `messages` format)."""
    return [{"messages": e.messages, "source": e.source, "line": e.line} for e in examples]
