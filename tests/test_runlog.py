"""The run log (metrics.jsonl + TensorBoard) and a run directory's self-description."""

from __future__ import annotations

import json

from sftkit.data.dataset import DataReport
from sftkit.outputs import describe_run
from sftkit.runlog import MetricsLog, config_changes


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
