"""Acceptance as a user runs it: `sftkit train` on messages, ShareGPT and Alpaca files (tiny model), and a few
steps of the real default model lower the loss (integration)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PAIRS = [(f"What is {a} times {b}?", f"{a} times {b} is {a * b}.") for a in range(2, 9) for b in range(3, 8)]


def write_format(path: Path, fmt: str) -> Path:
    if fmt == "messages":
        path.write_text("".join(json.dumps({"messages": [{"role": "system", "content": "Answer briefly."},
                                                         {"role": "user", "content": q},
                                                         {"role": "assistant", "content": a}]}) + "\n"
                                for q, a in PAIRS))
    elif fmt == "sharegpt":
        path.write_text(json.dumps([{"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a},
                                                       {"from": "human", "value": "Thanks!"},
                                                       {"from": "gpt", "value": "You are welcome."}]}
                                    for q, a in PAIRS]))
    else:
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["instruction", "input", "output"])
            writer.writerows([[q, "", a] for q, a in PAIRS])
    return path


@pytest.mark.parametrize("fmt,suffix", [("messages", "jsonl"), ("sharegpt", "json"), ("alpaca", "csv")])
def test_train_each_format_with_cli(tmp_path, tiny_model_dir, fmt, suffix):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    data = write_format(tmp_path / f"data.{suffix}", fmt)
    config = {"model": {"name": str(tiny_model_dir)}, "data": {"train_path": str(data), "val_fraction": 0.2},
              "train": {"max_steps": 6, "micro_batch_size": 4, "learning_rate": 5e-3, "eval_every": 3},
              "output_dir": str(tmp_path / "run")}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "sftkit.cli", "train", str(tmp_path / "c.yaml")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["num_train_examples"] == 28 and summary["num_val_examples"] == 7
    assert summary["best_val_loss"] < summary["initial_val_loss"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "run" / "adapter")
    assert sum("lora_A" in n for n, _ in model.named_parameters()) == 14  # 7 linear layers x 2 blocks


@pytest.mark.integration
def test_real_default_model_few_steps_lower_loss(tmp_path):
    from sftkit.recipes.sft_config import SFTConfig
    from sftkit.recipes.sft import train

    data = write_format(tmp_path / "data.jsonl", "messages")
    config = SFTConfig.model_validate({
        "data": {"train_path": str(data), "val_fraction": 0.15, "max_length": 128},
        "train": {"max_steps": 3, "micro_batch_size": 4, "learning_rate": 2e-3, "eval_every": 3, "warmup_ratio": 0},
        "output_dir": str(tmp_path / "run")})
    summary = train(config, quiet=True)
    assert summary["best_val_loss"] < summary["initial_val_loss"] - 0.05
    assert summary["best_step"] == 3
