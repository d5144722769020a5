"""A fake `sftkit train` run directory: tiny base model + a (non-zero) LoRA adapter + the data splits."""

from __future__ import annotations

import json

import pytest
import yaml


def _conversation(i: int) -> dict:
    a, b = i % 7 + 1, i % 5 + 2
    return {"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                         {"role": "assistant", "content": str(a + b)}], "source": "arith.jsonl", "line": i + 1}


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def fake_run(tmp_path_factory, tiny_model_dir, tokenizer):
    """RUN/{summary.json, config.yaml, adapter/, data/{train,val,test}.jsonl} with the tiny model as base."""
    from sftkit.config import LoraSection
    from tests.helpers import tuned_lora_model

    run = tmp_path_factory.mktemp("run")
    model = tuned_lora_model(tiny_model_dir, LoraSection(r=4, alpha=8, dropout=0.0))
    model.save_pretrained(run / "adapter")
    tokenizer.save_pretrained(run / "adapter")  # as sftkit.training.run_dir.export_model writes it
    (run / "summary.json").write_text(json.dumps({"base_model": str(tiny_model_dir), "method": "lora"}))
    config = {"model": {"name": str(tiny_model_dir)},
              "eval": {"after_training": True, "shots": 2, "max_new_tokens": 4, "metric": "normalized_exact_match",
                       "suite": None, "suite_max_examples": 200, "safety": False}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [_conversation(i) for i in range(24)]
    write_jsonl(run / "data" / "train.jsonl", rows[:14])
    write_jsonl(run / "data" / "val.jsonl", rows[14:18])
    write_jsonl(run / "data" / "test.jsonl", rows[18:])
    return run


@pytest.fixture
def mc_file(tmp_path):
    rows = [{"question": f"Question {i}: which word?", "choices": ["alpha", "beta", "gamma"], "answer": i % 3}
            for i in range(12)]
    return write_jsonl(tmp_path / "mc.jsonl", rows)


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("The fox ran over the hill.\n\nA cat sat on the mat and slept.\n\nRain fell all day.\n")
    return path
