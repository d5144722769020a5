"""Shared fixtures: the real SmolLM2 tokenizer and tiny random Llama models built from a config.

The default model is converted once into SFTKIT_HOME (the same cache `make demo` uses), so unit tests get
the real tokenizer and chat template without a network.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def default_dir():
    from sftkit.models import default_model_dir

    return default_model_dir()


@pytest.fixture(scope="session")
def tokenizer(default_dir):
    from sftkit.models import load_tokenizer

    return load_tokenizer(str(default_dir))


def make_tiny_model(seed: int = 0, num_layers: int = 2, hidden: int = 64):
    """A 2-layer Llama with SmolLM2's vocabulary and special-token ids, random weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=49152, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=num_layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2, pad_token_id=2, attn_implementation="sdpa",
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).float()


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
