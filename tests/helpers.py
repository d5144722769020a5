"""Helpers shared by test modules (fixtures live in conftest.py files; plain functions live here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]


def greedy_text(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """Token-by-token argmax over full forward passes of an already rendered `prompt` (no padding, no cache,
    no generate()), stopping at the tokenizer's EOS; decoded without special tokens."""
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    new: list[int] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            token = int(model(torch.tensor([ids + new])).logits[0, -1].argmax())
            if token == tokenizer.eos_token_id:
                break
            new.append(token)
    return tokenizer.decode(new, skip_special_tokens=True)


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


def write_sft_data(path: Path, n: int = 24, seed: int = 0) -> Path:
    """Variable-length arithmetic chats (uneven lengths make normalisation bugs visible)."""
    import random

    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            a, b = rng.randint(1, 999), rng.randint(1, 999)
            pad = " please" * rng.randint(0, 6)
            reply = f"{a} plus {b} is {a + b}." + " Indeed." * rng.randint(0, 4)
            f.write(json.dumps({"messages": [{"role": "user", "content": f"Add {a} and {b}{pad}."},
                                             {"role": "assistant", "content": reply}]}) + "\n")
    return path


def sft_config(tmp_path, model_dir, **train_overrides):
    """A tiny-model SFT config on `write_sft_data` rows; keyword arguments override `train:` (and `lora`,
    `data`, `_out` the run directory name)."""
    from sftkit.recipes.sft_config import SFTConfig

    data = write_sft_data(tmp_path / "data.jsonl")
    lora = train_overrides.pop("lora", {"dropout": 0.0})
    data_cfg = train_overrides.pop("data", {})
    raw = {
        "model": {"name": str(model_dir)},
        "data": {"train_path": str(data), "val_fraction": 0.25, **data_cfg},
        # fp32: these configs' tests compare runs at tolerances derived for fp32 arithmetic (tests/recipes/
        # trajectory.py); `auto` would pick bf16 autocast on CPUs with AMX or AVX512-BF16 (tests/training/
        # test_precision.py covers it)
        "train": {"max_steps": 2, "micro_batch_size": 4, "learning_rate": 1e-2, "warmup_ratio": 0.0,
                  "eval_every": 100, "save_every": 100, "precision": "fp32", **train_overrides},
        "lora": lora,
        "output_dir": str(tmp_path / train_overrides.get("_out", "run")),
    }
    raw["train"].pop("_out", None)
    return SFTConfig.model_validate(raw)


def packed_examples(lengths: list[int]):
    """TokenizedExamples of the given lengths (deterministic ids); the second half of each is trained."""
    from sftkit.data.dataset import TokenizedExample

    out = []
    for i, n in enumerate(lengths):
        ids = [(37 * i + 11 * t) % 5000 + 100 for t in range(n)]
        out.append(TokenizedExample(ids, [-100] * (n // 2) + ids[n // 2:], "x", i + 1))
    return out


def adapter_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "adapter" / "adapter_model.safetensors")


def run_recorded(args: list[str], steps_dir: Path, processes: int = 1, port: int = 0) -> None:
    """`sftkit ARGS` (under torchrun with `processes` > 1) on recording SGD (tests/recipes/sgd_cli.py)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "SFTKIT_TEST_STEPS_DIR": str(steps_dir)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
                str(port)] if processes > 1 else [sys.executable]
    proc = subprocess.run([*launcher, "-m", "tests.recipes.sgd_cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def arithmetic_conversation(i: int) -> dict:
    a, b = i % 7 + 1, i % 5 + 2
    return {"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                         {"role": "assistant", "content": str(a + b)}], "source": "arith.jsonl", "line": i + 1}


def safety_settings():
    """Safety settings small enough for tiny-model tests (2 new tokens, 10 prompts per set, 6 HHH questions)."""
    from sftkit.safety.settings import SafetySettings

    return SafetySettings(max_new_tokens=2, max_prompts=10, hhh_max_examples=6, batch_size=10)
