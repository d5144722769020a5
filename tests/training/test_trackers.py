"""`train.report_to`: every tracker gets the config, each metrics row and the results, offline (local stores and
offline modes); TensorBoard's HParams session lands in the run's own event file."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest

from sftkit.config import TrainSection, load_config
from sftkit.errors import ConfigError
from sftkit.training import trackers
from sftkit.training.metrics_log import MetricsLog

CONFIG = {"train": {"learning_rate": 0.001, "method": "lora", "report_to": ["tensorboard"]}, "lora": {"r": 16},
          "eval": {"suite": None}}
ROWS = [{"step": 0, "val_loss": 2.0}, {"step": 1, "train_loss": 1.5, "lr": 0.001},
        {"step": 2, "train_loss": 1.25, "lr": 0.0005, "val_loss": 1.75}]
SUMMARY = {"best_val_loss": 1.75, "initial_val_loss": 2.0, "steps": 2, "retention": 0.9,
           "gain_over_prompting": {"abs": 0.25, "ci_low": 0.125, "ci_high": 0.375}, "safety": {"refusal_rate": 0.5}}
RESULTS = {"result/initial_val_loss": 2.0, "result/best_val_loss": 1.75, "result/steps": 2.0, "result/retention": 0.9,
           "result/gain_abs": 0.25, "result/gain_ci_low": 0.125, "result/gain_ci_high": 0.375,
           "result/safety_refusal_rate": 0.5}


def run_log(out_dir: Path, report_to: list[str], resume_step=None) -> MetricsLog:
    out_dir.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(out_dir, enabled=True, resume_step=resume_step, report_to=report_to, config=CONFIG)
    for row in ROWS:
        log.log(row)
    log.close()
    log.finish(SUMMARY)
    return log


def test_report_to_takes_a_name_a_list_or_none_and_names_the_missing_extra(monkeypatch):
    assert TrainSection().report_to == ["tensorboard"]
    assert TrainSection(report_to="none").report_to == [] and TrainSection(report_to=["none"]).report_to == []
    assert trackers.results_from_summary(SUMMARY) == RESULTS
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError) as err:
        load_config(None, ["train.report_to=[wandb, none]"], require_train_path=False)
    assert err.value.problems == ["train.report_to: wandb needs its package: pip install 'sftkit[wandb]'",
                                  "train.report_to: `none` cannot be combined with other trackers (got "
                                  "['wandb', 'none'])"]


def test_tensorboard_hparams_session_is_in_the_runs_own_event_file(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run_log(tmp_path, ["tensorboard"])
    files = list((tmp_path / "tensorboard").iterdir())
    assert len(files) == 1 and files[0].is_file()  # no sub-directory per call, as torch's add_hparams makes
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    assert set(content) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert {k: v.number_value or v.string_value for k, v in start.hparams.items()} == {
        "train.learning_rate": 0.001, "train.method": "lora", "train.report_to": '["tensorboard"]', "lora.r": 16}
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert scalars["val_loss"] == [(0, 2.0), (2, 1.75)]
    assert {k: v for k, v in scalars.items() if k.startswith("result/")} == {
        k: [(2, pytest.approx(v, rel=1e-7))] for k, v in RESULTS.items()}


def test_trackio_local_store(tmp_path, monkeypatch):
    pytest.importorskip("trackio", reason="pip install 'sftkit[trackio]'")
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))
    run_log(tmp_path / "runs" / "r1", ["trackio"])
    from trackio.sqlite_storage import SQLiteStorage

    logs = SQLiteStorage.get_logs("sftkit", "r1")
    assert [{k: v for k, v in row.items() if k != "timestamp"} for row in logs] == [
        {**r, "step": r["step"]} for r in ROWS] + [{**RESULTS, "step": 2}]
    assert {k: v for k, v in SQLiteStorage.get_run_config("sftkit", "r1").items() if not k.startswith("_")} == CONFIG


def test_mlflow_sqlite_store_beside_the_runs_and_resume_continues_the_run(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow", reason="pip install 'sftkit[mlflow]'")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "runs" / "r1"
    run_log(run, ["mlflow"])
    run_id = json.loads((run / "trackers.json").read_text())["mlflow"]["run_id"]
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "val_loss")] == [(0, 2.0), (2, 1.75)]
    assert client.get_run(run_id).data.params == {"train.learning_rate": "0.001", "train.method": "lora",
                                                 "train.report_to": '["tensorboard"]', "lora.r": "16"}
    assert client.get_run(run_id).info.run_name == "r1"
    run_log(run, ["mlflow"], resume_step=1)
    assert json.loads((run / "trackers.json").read_text())["mlflow"]["run_id"] == run_id
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1


def wandb_records(path: Path) -> list:
    """The protobuf records of an offline .wandb file (LevelDB log format: 32 KiB blocks of chunks, each with a
    7-byte header: CRC, length, type FULL=1 FIRST=2 MIDDLE=3 LAST=4), after its 7-byte `:W&B` file header."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, pending, records = 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += block - pos % block
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            records.append(wandb_internal_pb2.Record.FromString(pending))
            pending = b""
    return records


def finished_records(path: Path) -> list | None:
    """The records once the file ends with the run's exit record; None while it is still being written."""
    try:
        records = wandb_records(path)
    except Exception:  # a record half written: protobuf or struct cannot decode it yet
        return None
    return records if records and records[-1].WhichOneof("record_type") == "exit" else None


def item_key(item) -> str:
    return item.key or "/".join(item.nested_key)


def test_wandb_offline_run_in_the_run_directory(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="pip install 'sftkit[wandb]'")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "r1"
    run_log(run, ["wandb"])
    (path,) = run.glob("wandb/offline-run-*/run-*.wandb")
    # W&B's own service process writes the file; finish() returns before it has written the run's exit record
    deadline = time.monotonic() + 60
    while (records := finished_records(path)) is None:
        assert time.monotonic() < deadline, "W&B did not finish writing its offline run file"
        time.sleep(0.2)
    history = [{key: json.loads(i.value_json) for i in r.history.item if not (key := item_key(i)).startswith("_")}
               for r in records if r.WhichOneof("record_type") == "history"]
    assert history == [{k: v for k, v in row.items() if k != "step"} for row in ROWS]
    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update({item_key(i): json.loads(i.value_json) for i in r.summary.update
                            if item_key(i).startswith("result/")})
    assert summary == RESULTS
    (config_record,) = [r for r in records if r.WhichOneof("record_type") == "run"]
    config = {item_key(i): json.loads(i.value_json) for i in config_record.run.config.update
              if not item_key(i).startswith("_")}
    assert config == CONFIG


def test_training_with_report_to_none_writes_metrics_jsonl_only(tmp_path, tiny_model_dir):
    from sftkit.recipes.sft import train
    from tests.helpers import sft_config as make_config

    config = make_config(tmp_path, tiny_model_dir, max_steps=1, report_to="none")
    train(config, quiet=True)
    run = Path(config.output_dir)
    assert (run / "metrics.jsonl").is_file() and not (run / "tensorboard").exists()
    assert not (run / "trackers.json").exists()
