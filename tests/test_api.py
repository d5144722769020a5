"""The Python API: configs as objects, paths or mappings; data in memory; typed results; a fast `import sftkit`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import sftkit
from sftkit.errors import ConfigError

ROWS = [{"messages": [{"role": "user", "content": f"What is {a} plus {a}?"},
                      {"role": "assistant", "content": f"{2 * a}"}]} for a in range(1, 11)]


def test_import_is_lazy_and_fast():
    """`import sftkit` loads neither torch nor transformers; the public names resolve on first use."""
    code = ("import sys, time; t = time.perf_counter(); import sftkit; dt = time.perf_counter() - t; "
            "print(dt, 'torch' in sys.modules, 'transformers' in sys.modules, 'pydantic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(sftkit.__file__).parents[1]).stdout.split()
    assert out[1:] == ["False", "False", "False"]
    assert set(sftkit.__all__) >= {"SFTConfig", "DPOConfig", "load_config", "train", "dpo", "evaluate", "compare",
                                   "safety", "curate"}
    assert sftkit.SFTConfig.__module__ == "sftkit.recipes.sft_config"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sftkit.nope  # noqa: B018


def test_config_objects_paths_and_mappings_agree(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  train_path: d.jsonl\ntrain:\n  learning_rate: 0.001\n")
    from_file = sftkit.load_config(str(path), ["train.max_steps=3"])
    from_mapping = sftkit.load_config({"data": {"train_path": "d.jsonl"}, "train": {"learning_rate": 1e-3}},
                                      ["train.max_steps=3"])
    from_object = sftkit.load_config(sftkit.SFTConfig(data={"train_path": "d.jsonl"}, train={"learning_rate": 1e-3}),
                                     ["train.max_steps=3"])
    assert from_file == from_mapping == from_object
    assert from_file.train.max_steps == 3 and from_file.train.learning_rate == 1e-3


def test_a_config_for_a_run_needs_training_data_unless_it_comes_in_memory():
    assert sftkit.SFTConfig().data.train_path is None  # built in Python, the data may be passed to train()
    with pytest.raises(ConfigError, match="data.train_path is required"):
        sftkit.load_config({})
    assert sftkit.load_config({}, require_train_path=False).data.train_path is None
    with pytest.raises(ConfigError, match="data.train_path is required"):
        sftkit.train({"train": {"max_steps": 1}})


def test_train_on_rows_in_memory_returns_the_summary(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    result = sftkit.train({"model": {"name": str(tiny_model_dir)}, "output_dir": str(out),
                           "train": {"max_steps": 2, "micro_batch_size": 2, "eval_every": 1}},
                          overrides=["data.val_fraction=0.2"], train_data=ROWS, quiet=True)
    summary = json.loads((out / "summary.json").read_text())
    assert isinstance(result, sftkit.TrainResult) and result.to_dict() == summary
    assert (result.steps, result.num_train_examples, result.num_val_examples) == (2, 8, 2)
    assert result.best_val_loss == summary["best_val_loss"] and result.output_dir == out
    written = [json.loads(line) for line in (out / "inputs" / "train.jsonl").read_text().splitlines()]
    assert written == ROWS
    assert f"train_path: {out / 'inputs' / 'train.jsonl'}" in (out / "config.yaml").read_text()
    with pytest.raises(sftkit.UserError, match="already holds a run"):  # the finished run's inputs stay as they are
        sftkit.train({"model": {"name": str(tiny_model_dir)}, "output_dir": str(out)}, train_data=ROWS[:2])
    assert len((out / "inputs" / "train.jsonl").read_text().splitlines()) == len(ROWS)


def test_train_takes_a_datasets_dataset(tmp_path, tiny_model_dir):
    from datasets import Dataset

    ds = Dataset.from_list(ROWS)
    result = sftkit.train(sftkit.SFTConfig(model={"name": str(tiny_model_dir)}, output_dir=str(tmp_path / "ds"),
                                           train={"max_steps": 1, "micro_batch_size": 4}),
                          train_data=ds, quiet=True)
    assert result.steps == 1 and result.num_train_examples + result.num_val_examples == len(ROWS)


def test_the_command_line_starts_without_torch():
    """`sftkit --help` and the config checks before a model loads import no torch (it takes seconds)."""
    code = "import sys, sftkit.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(sftkit.__file__).parents[1]).stdout.split()
    assert out == ["False", "False"]


def test_every_result_class_is_its_own_frozen_dataclass():
    """A result class without its own @dataclass inherits Result's fields only and reads every summary as empty."""
    import dataclasses

    from sftkit.results import Result

    classes = Result.__subclasses__()
    assert len(classes) >= 10
    for cls in classes:
        assert "__dataclass_fields__" in cls.__dict__ and cls.__dataclass_params__.frozen, cls.__name__
        assert len(dataclasses.fields(cls)) > len(dataclasses.fields(Result)), cls.__name__
