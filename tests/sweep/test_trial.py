"""Trials: config hashes that are stable, trial configs on the fixed splits, lengths from the budget."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sftkit.recipes.sft_config import SFTConfig
from sftkit.sweep.config import BudgetSection
from sftkit.sweep.trial import TrialBuilder, config_hash, trial_raw

ROOT = Path(__file__).resolve().parents[2]
RAW = {"model": {"name": "default"}, "data": {"train_path": "d.jsonl", "max_length": 128},
       "train": {"method": "lora", "micro_batch_size": 2, "eval_every": 5}, "lora": {"r": 8}}


def test_hash_ignores_order_defaults_written_out_and_output_dir():
    one = SFTConfig.model_validate(RAW)
    reordered = SFTConfig.model_validate({"lora": {"r": 8}, "train": {"eval_every": 5, "micro_batch_size": 2,
                                                                      "method": "lora"},
                                          "data": {"max_length": 128, "train_path": "d.jsonl"},
                                          "output_dir": "elsewhere"})
    explicit = SFTConfig.model_validate({**RAW, "train": {**RAW["train"], "warmup_ratio": 0.03,
                                                          "learning_rate": one.train.learning_rate}})
    h = config_hash(one)
    assert len(h) == 12 and int(h, 16) >= 0
    assert config_hash(reordered) == config_hash(explicit) == h  # the method's default lr resolved = written out
    assert config_hash(SFTConfig.model_validate({**RAW, "lora": {"r": 16}})) != h


def test_hash_is_the_same_in_another_process():
    code = (f"import json; from sftkit.recipes.sft_config import SFTConfig; from sftkit.sweep.trial import "
            f"config_hash; print(config_hash(SFTConfig.model_validate(json.loads({json.dumps(json.dumps(RAW))}))))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    assert out.stdout.strip() == config_hash(SFTConfig.model_validate(RAW))


def test_hash_of_full_fine_tuning_ignores_lora_and_sweep_dir_location(tmp_path):
    full = {**RAW, "train": {**RAW["train"], "method": "full"}}
    assert config_hash(SFTConfig.model_validate(full)) == config_hash(
        SFTConfig.model_validate({**full, "lora": {"r": 64}}))
    here = SFTConfig.model_validate(trial_raw(RAW, {}, tmp_path / "a", 10))
    there = SFTConfig.model_validate(trial_raw(RAW, {}, tmp_path / "b" / "c", 10))
    assert config_hash(here, tmp_path / "a") == config_hash(there, tmp_path / "b" / "c")
    assert config_hash(here) != config_hash(there)


def test_trial_config_is_the_base_with_the_settings_on_the_fixed_splits(tmp_path):
    raw = trial_raw({**RAW, "data": {**RAW["data"], "test_fraction": 0.1, "max_examples": 5},
                     "eval": {"after_training": True}}, {"train.learning_rate": 3e-3, "lora.r": 4}, tmp_path, 12)
    config = SFTConfig.model_validate(raw)
    assert (config.train.learning_rate, config.lora.r, config.train.max_steps) == (3e-3, 4, 12)
    d = config.data
    assert (d.train_path, d.val_path) == (str(tmp_path / "data" / "train.jsonl"), str(tmp_path / "data" / "val.jsonl"))
    assert (d.test_path, d.test_fraction, d.max_examples, d.format, d.max_length) == (None, 0.0, None, "messages", 128)
    assert not config.eval.after_training and not config.eval.safety
    assert RAW["train"] == {"method": "lora", "micro_batch_size": 2, "eval_every": 5}  # the base is not changed


def write_split(out: Path, n: int) -> None:
    """OUTPUT_DIR/data/{train,val}.jsonl with n rows whose replies have 1..n words."""
    (out / "data").mkdir(parents=True)
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": " ".join(["yes"] * i)}]}
            for i in range(1, n + 1)]
    for name in ("train", "val"):
        (out / "data" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("budget, expected", [({"max_steps": 7}, 7), ({}, "epochs"), ({"num_tokens": 1000}, "tokens")])
def test_trial_length_from_the_budget(tmp_path, tokenizer, default_dir, budget, expected):
    from sftkit.data.dataset import load_conversations, tokenize_examples

    write_split(tmp_path, 10)
    base = {"model": {"name": str(default_dir)}, "data": {"train_path": "unused.jsonl"},
            "train": {"micro_batch_size": 2, "grad_accum_steps": 2, "num_epochs": 3}}
    trial = TrialBuilder(base, BudgetSection(**budget), tmp_path).build("t01", {})
    examples, _ = load_conversations(str(tmp_path / "data" / "train.jsonl"))
    trained = [x.num_trained_tokens for x in tokenize_examples(tokenizer, examples, 1024)[0]]
    want = {"epochs": 3 * math.ceil(10 / 4), "tokens": math.ceil(1000 / (sum(trained) / 10 * 4))}.get(expected,
                                                                                                      expected)
    assert trial.total_steps == want
    assert trial.run_dir == tmp_path / "trials" / trial.id
