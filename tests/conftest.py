"""Shared fixtures: the real SmolLM2 tokenizer and tiny random Llama models built from a config.

The default model is converted once into SFTKIT_HOME (the same cache `make demo` uses), so unit tests get
the real tokenizer and chat template without a network.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.helpers import (
    arithmetic_conversation,
    make_tiny_model,
    tuned_lora_model,
    write_jsonl,
)


@pytest.fixture(scope="session")
def default_dir():
    from sftkit.models import default_model_dir

    return default_model_dir()


@pytest.fixture(scope="session")
def tokenizer(default_dir):
    from sftkit.models import load_tokenizer

    return load_tokenizer(str(default_dir))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer):
    """A saved tiny model directory (safetensors + tokenizer + chat template), usable as `model.name`."""
    path = tmp_path_factory.mktemp("tiny-llama")
    make_tiny_model().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def tiny_model():
    return make_tiny_model()


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run `sftkit ARGS...` in-process as the console script does; returns (exit code, stdout, stderr)."""
    import sys

    from sftkit import cli

    def invoke(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["sftkit", *args])
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return invoke


@pytest.fixture(scope="session")
def fake_run(tmp_path_factory, tiny_model_dir, tokenizer):
    """RUN/{summary.json, config.yaml, adapter/, data/{train,val,test}.jsonl} with the tiny model as base."""
    from sftkit.config import LoraSection

    run = tmp_path_factory.mktemp("run")
    model = tuned_lora_model(tiny_model_dir, LoraSection(r=4, alpha=8, dropout=0.0))
    model.save_pretrained(run / "adapter")
    tokenizer.save_pretrained(run / "adapter")  # as sftkit.training.run_dir.export_model writes it
    (run / "summary.json").write_text(json.dumps({"base_model": str(tiny_model_dir), "method": "lora"}))
    config = {"model": {"name": str(tiny_model_dir)},
              "eval": {"after_training": True, "shots": 2, "max_new_tokens": 4, "metric": "normalized_exact_match",
                       "suite": None, "suite_max_examples": 200, "safety": False}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [arithmetic_conversation(i) for i in range(24)]
    write_jsonl(run / "data" / "train.jsonl", rows[:14])
    write_jsonl(run / "data" / "val.jsonl", rows[14:18])
    write_jsonl(run / "data" / "test.jsonl", rows[18:])
    return run
