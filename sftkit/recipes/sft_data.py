"""The SFT recipe's data phase: read the sources, split them (seeded), mix in replay rows, tokenise with
assistant-only labels. `read_splits` is also what `sftkit sweep` uses to fix one split for all its trials.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sftkit.data.dataset import DataReport, Example, TokenizedExample, load_conversations, load_splits
from sftkit.data.dataset import tokenize_examples
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


def read_splits(data_cfg: DataSection, seed: int, data_report: DataReport) -> tuple[list[Example], list[Example],
                                                                                      list[Example]]:
    """(train, val, test) examples: `val_path`/`test_path` when set, else seeded fractions of `train_path`;
    train subsampled to `max_examples` (seeded, in the sampled order)."""
    def load(spec):
        return load_conversations(spec, data_cfg.format, data_cfg.on_bad_row, data_report)[0]

    return load_splits(data_cfg, seed, load, "sftkit.train")


def setup_data(config: SFTConfig, tokenizer, report: Reporter) -> SFTData:
    """Read and split the data (seeded), mix in replay rows, tokenise with assistant-only labels."""
    data_cfg, seed = config.data, config.train.seed
    data_report = DataReport()
    train_ex, val_ex, test_ex = read_splits(data_cfg, seed, data_report)
    replay = []
    if data_cfg.replay_path and data_cfg.replay_fraction > 0:
        pool, _ = load_conversations(data_cfg.replay_path, "auto", data_cfg.on_bad_row, data_report)
        want = round(len(train_ex) * data_cfg.replay_fraction / (1 - data_cfg.replay_fraction))
        replay = random.Random(seed + 1).sample(pool, min(want, len(pool)))
        if len(replay) < want:
            report.note(f"data.replay_path holds {len(pool)} examples, fewer than the {want} that "
                        f"replay_fraction {data_cfg.replay_fraction} asks for; all {len(pool)} are mixed in")

    def tokenize(exs):  # task and replay rows apart, so the counts are of the examples that train
        return tokenize_examples(tokenizer, exs, data_cfg.max_length, data_cfg.overlong, data_cfg.train_on,
                                 data_report)[0]

    task_tok, replay_tok = tokenize(train_ex), tokenize(replay)
    val_tok = tokenize(val_ex)
    if not task_tok and not replay_tok:
        raise UserError("no training example has a trained token left; check max_length and the data")
    num_train = len(train_ex) + len(replay)
    length_drops = data_report.skipped["too_long"] + data_report.skipped["no_trained_tokens"]
    if length_drops > 0.5 * (num_train + len(val_ex)):
        raise UserError(f"{length_drops} of {num_train + len(val_ex)} examples were dropped for length; raise "
                        f"data.max_length (now {data_cfg.max_length}) or use data.overlong: truncate")
    return SFTData(train_ex, replay, val_ex, test_ex, task_tok + replay_tok, val_tok, len(replay_tok), data_report)


def example_rows(examples: list[Example]) -> list[dict]:
    """Examples as the rows a run directory's `data/*.jsonl` hold (readable back as the `messages` format)."""
    return [{"messages": e.messages, "source": e.source, "line": e.line} for e in examples]
