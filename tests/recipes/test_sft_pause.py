"""`stop_at_step`: a run paused and resumed, rung by rung as `sftkit sweep` trains, is the uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sftkit.recipes.sft import train
from tests.helpers import adapter_weights, sft_config


def metrics_rows(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if "per_second" not in k}
            for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_paused_and_resumed_run_is_the_uninterrupted_run(tmp_path, tiny_model_dir):
    def config(name):
        (tmp_path / name).mkdir()
        return sft_config(tmp_path / name, tiny_model_dir, max_steps=8, micro_batch_size=2, eval_every=4,
                           save_every=100, learning_rate=5e-3, warmup_ratio=0.25, lora={"dropout": 0.1})

    straight = train(config("straight"), quiet=True)
    paused = config("paused")
    first = train(paused, quiet=True, stop_at_step=3)
    run = Path(paused.output_dir)
    assert (first["paused_at_step"], first["steps"], first["total_steps"]) == (3, 3, 8)
    assert not (run / "summary.json").exists() and (run / "adapter" / "adapter_model.safetensors").exists()
    assert [p.name for p in sorted((run / "checkpoints").glob("step-*"))] == ["step-0000003"]
    # step 3 is no validation step: its validation is reported but counts neither for best/ nor for patience
    assert first["best_step"] == 0 and first["val_loss"] < first["initial_val_loss"]

    second = train(paused, resume=True, quiet=True, stop_at_step=4)
    straight_val = {r["step"]: r["val_loss"] for r in metrics_rows(Path(straight["outputs"]["adapter"]).parent)
                    if "val_loss" in r}
    assert second["paused_at_step"] == 4 and second["val_loss"] == straight_val[4]
    last = train(paused, resume=True, quiet=True)
    assert "paused_at_step" not in last
    a, b = adapter_weights(tmp_path / "straight" / "run"), adapter_weights(run)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert metrics_rows(tmp_path / "straight" / "run") == metrics_rows(run)  # no row for the pause at step 3
    for key in ("steps", "trained_tokens", "initial_val_loss", "best_val_loss", "best_step"):
        assert last[key] == straight[key], key


def test_stop_at_or_after_the_end_finishes_the_run(tmp_path, tiny_model_dir):
    summary = train(sft_config(tmp_path, tiny_model_dir, max_steps=2), quiet=True, stop_at_step=5)
    assert summary["steps"] == 2 and "paused_at_step" not in summary
    assert (tmp_path / "run" / "summary.json").exists()
