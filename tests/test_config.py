"""Config: typed, every problem reported at once before any model loads, shipped examples validate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sftkit.config import example_yaml, load_config
from sftkit.recipes.sft_config import SFTConfig
from sftkit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_every_problem_listed_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"train_path": "x.jsonl", "max_lenght": 512},
        "train": {"learning_rate": -1, "micro_batch_size": 0, "method": "qdora"},
        "trian": {},
    }))
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    problems = err.value.problems
    assert len(problems) == 5
    text = "\n".join(problems)
    assert "unknown key 'data.max_lenght'; did you mean 'data.max_length'?" in text
    assert "unknown key 'trian'; did you mean 'train'?" in text
    assert "train.learning_rate: Input should be greater than 0 (got -1)" in text
    assert "train.micro_batch_size: Input should be greater than or equal to 1 (got 0)" in text
    assert "train.method: Input should be 'lora', 'qlora' or 'full' (got 'qdora')" in text


def test_conflicting_options_reported_together():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["train.fsdp=true", "data.replay_fraction=0.2", "data.val_fraction=0", "train.patience=2"])
    assert len(err.value.problems) == 4  # missing train_path, fsdp+lora, replay without path, patience w/o val


def test_set_overrides_parse_yaml_values():
    cfg = load_config(None, ["data.train_path=a.jsonl", "train.learning_rate=3e-5", "train.packing=false",
                             "lora.target_modules=[q_proj, v_proj]"])
    assert cfg.train.learning_rate == 3e-5
    assert cfg.train.packing is False
    assert cfg.lora.target_modules == ["q_proj", "v_proj"]


def test_every_field_has_help():
    def walk(cls):
        for name, info in cls.model_fields.items():
            assert info.description, f"{cls.__name__}.{name} has no help text"
            if isinstance(info.annotation, type) and hasattr(info.annotation, "model_fields"):
                walk(info.annotation)

    walk(SFTConfig)


def test_example_config_round_trips():
    raw = yaml.safe_load(example_yaml())
    raw["data"]["train_path"] = "x.jsonl"
    assert SFTConfig.model_validate(raw) == SFTConfig.model_validate({"data": {"train_path": "x.jsonl"}})


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    raw = yaml.safe_load(path.read_text())
    if "search" in raw:  # a sweep file; tests/sweep/test_config.py loads it whole
        from sftkit.sweep.config import SweepConfig

        SweepConfig.model_validate(raw)
    elif "dpo" not in raw:
        SFTConfig.model_validate(raw)


def test_cli_config_error_exits_2_before_loading_model(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: {name: /does/not/exist}\ndata: {train_path: x.jsonl}\ntrain: {lr: 1, max_steps: 0}\n")
    proc = subprocess.run([sys.executable, "-m", "sftkit.cli", "train", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "2 problem(s)" in proc.stderr
    assert "unknown key 'train.lr'" in proc.stderr and "train.max_steps" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unset_learning_rate_is_the_methods_default_and_a_set_one_stays():
    from sftkit.recipes.dpo_config import DPOConfig

    assert SFTConfig().train.learning_rate == 3e-3
    assert SFTConfig(train={"method": "full"}).train.learning_rate == 3e-4
    assert SFTConfig(train={"method": "full", "learning_rate": 3e-5}).train.learning_rate == 3e-5
    assert DPOConfig().train.learning_rate == 5e-5
    assert DPOConfig(train={"method": "full"}).train.learning_rate == 5e-5
    # resolved once, so the written config.yaml names the number and reads back as the same config
    dumped = SFTConfig(train={"method": "full"}).model_dump(mode="json")
    assert dumped["train"]["learning_rate"] == 3e-4
    assert SFTConfig.model_validate(dumped) == SFTConfig(train={"method": "full"})
