"""The run log (metrics.jsonl + TensorBoard) and a run directory's self-description."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sftkit.data.dataset import DataReport
from sftkit.training.run_dir import describe_run
from sftkit.training.metrics_log import MetricsLog, config_changes


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_resume_drops_rows_after_the_checkpoint_and_appends(tmp_path):
    log = MetricsLog(tmp_path, enabled=True)
    for step in range(4):
        log.log({"step": step, "train_loss": 1.0 / (step + 1)})
    log.close()
    assert list((tmp_path / "tensorboard").iterdir())  # event files written beside metrics.jsonl
    log = MetricsLog(tmp_path, enabled=True, resume_step=2)  # checkpoint at step 2: steps 3.. run again
    log.log({"step": 3, "train_loss": 0.3})
    log.close()
    assert [(r["step"], r["train_loss"]) for r in rows(tmp_path / "metrics.jsonl")] == [
        (0, 1.0), (1, 0.5), (2, 1.0 / 3), (3, 0.3)]
    MetricsLog(tmp_path, enabled=True).close()  # a fresh run starts a fresh file
    assert rows(tmp_path / "metrics.jsonl") == []


def tensorboard_scalars(run) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value)]} as TensorBoard's own reader serves them (it honours session-start purges)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_after_a_crash_and_resume_has_each_step_once(tmp_path, tiny_model_dir, monkeypatch):
    """Checkpoint at step 3, crash in step 6: steps 4 and 5 (validation at 5) run twice. Without purging, step
    4's train scalars hide the first session's steps 4-5 of those tags only; val_loss at 5 showed up twice."""
    import sftkit.recipes.sft as sft
    from tests.helpers import sft_config

    config = sft_config(tmp_path, tiny_model_dir, max_steps=7, save_every=3, eval_every=5)
    original, calls = sft.CausalLMLoss.forward, {"n": 0}

    def crash_in_step_six(self, batch):
        if self.training:
            calls["n"] += 1
            if calls["n"] == 6:  # one micro-batch per step
                raise RuntimeError("simulated crash")
        return original(self, batch)

    monkeypatch.setattr(sft.CausalLMLoss, "forward", crash_in_step_six)
    with pytest.raises(RuntimeError, match="simulated crash"):
        sft.train(config, quiet=True)
    monkeypatch.setattr(sft.CausalLMLoss, "forward", original)
    sft.train(config, resume=True, quiet=True)
    run = tmp_path / "run"
    logged = rows(run / "metrics.jsonl")
    assert [r["step"] for r in logged] == [0, 1, 2, 3, 4, 5, 6, 7]
    scalars = tensorboard_scalars(run)
    assert set(scalars) == {k for r in logged for k in r if k != "step"}
    for tag, points in scalars.items():
        # TensorBoard stores float32: the values are metrics.jsonl's, rounded once
        assert points == [(r["step"], float(np.float32(r[tag]))) for r in logged if tag in r], tag
    assert [step for step, _ in scalars["val_loss"]] == [0, 5, 7]


def test_disabled_log_writes_nothing(tmp_path):
    log = MetricsLog(tmp_path, enabled=False)
    log.log({"step": 1, "train_loss": 2.0})
    log.close()
    assert list(tmp_path.iterdir()) == []


def test_describe_run_writes_splits_and_drops_an_empty_optional_one(tmp_path, tokenizer):
    report = DataReport()
    report.reject("malformed_json", "bad", "f.jsonl", 3, "{")
    describe_run(tmp_path, "model:\n  name: x\n", tokenizer, {"train": [{"a": 1}], "replay": [{"b": 2}]}, report,
                 optional=("replay",))
    assert rows(tmp_path / "data" / "replay.jsonl") == [{"b": 2}]
    describe_run(tmp_path, "model:\n  name: x\n", tokenizer, {"train": [{"a": 1}], "replay": []}, report,
                 optional=("replay",))
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["train.jsonl"]
    assert rows(tmp_path / "rejects.jsonl")[0]["line"] == 3
    assert (tmp_path / "config.yaml").read_text() == "model:\n  name: x\n"
    assert json.loads((tmp_path / "versions.json").read_text())["torch"]
    assert (tmp_path / "tokenizer" / "tokenizer_config.json").exists()


def test_config_changes_name_every_leaf():
    old = {"train": {"learning_rate": 1e-3, "max_steps": 2}, "output_dir": "a"}
    new = {"train": {"learning_rate": 5e-4, "max_steps": 2}, "output_dir": "a", "seed": 1}
    assert config_changes(old, new) == ["seed: None -> 1", "train.learning_rate: 0.001 -> 0.0005"]
