"""SWEEP.yaml: every problem at once, before any model loads; --auto; the shipped example."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sftkit.config import default_learning_rate
from sftkit.errors import ConfigError
from sftkit.sweep.auto import AUTO_PATIENCE, AUTO_TRIALS, LORA_RANKS
from sftkit.sweep.config import load_sweep

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def data(tmp_path) -> str:
    path = tmp_path / "d.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    return str(path)


def base(data: str, **train) -> dict:
    return {"data": {"train_path": data, "val_fraction": 0.2, "test_fraction": 0.2}, "train": train}


def problems_of(raw, overrides=None, auto=False) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_sweep(raw, overrides, auto=auto)
    return err.value.problems


def test_every_problem_is_reported_at_once(data):
    raw = {"base": {"data": {"train_path": data, "val_fraction": 0}},
           "search": {"train.max_steps": [1, 2], "train.learning_rate": [1e-4, 2.0], "lora.rr": [1],
                      "lora.alpha": {"log_unifrm": [1, 2]}},
           "trials": 3}
    assert problems_of(raw) == [
        "search.lora.alpha: unknown distribution 'log_unifrm': use one of log_uniform, uniform, int_uniform, "
        "log_grid",
        "search.train.max_steps: the sweep sets this itself (the splits are the base's for every trial, the "
        "length is the budget's); remove it from search",
        "the sweep chooses on validation data: set data.val_fraction > 0 or data.val_path in the base config",
        "the base config has no test split for the final comparison: set data.test_fraction > 0 or "
        "data.test_path, or set test: false",
    ]
    del raw["search"]["lora.alpha"]
    found = problems_of(raw)
    assert "a trial's config: unknown key 'lora.rr'; did you mean 'lora.r'?" in found
    assert "a trial's config: train.learning_rate: Input should be less than or equal to 1 (got 2.0)" in found


def test_sweep_keys_and_base_keys_are_checked(data):
    found = problems_of({"base": {**base(data), "trian": {}}, "objectiv": "val_loss",
                         "budget": {"max_steps": 3, "num_tokens": 5}, "search": {"lora.r": [8]}})
    assert found == ["budget: set max_steps or num_tokens, not both",
                     "unknown key 'objectiv'; did you mean 'objective'?"]
    found = problems_of({"base": {**base(data), "trian": {}}, "search": {"lora.r": [8]}})
    assert found == ["base: unknown key 'trian'; did you mean 'train'?"]
    assert problems_of({"search": {"lora.r": [8]}}) == ["base is required: a `sftkit train` config file, or the "
                                                        "config inline"]


def test_counts_of_trials(data):
    sampled = {"base": base(data), "search": {"train.learning_rate": {"log_uniform": [1e-4, 1e-2]}}}
    assert problems_of(sampled) == ["trials is required when a setting is sampled: set trials: N"]
    assert len(load_sweep({**sampled, "trials": 4}).params) == 4
    grid = {"base": base(data), "search": {"lora.r": [8, 16]}, "trials": 3}
    assert problems_of(grid) == ["trials is 3 but the grid has 2 points: lower trials, or sample a setting (e.g. "
                                 "{log_uniform: [low, high]})"]
    assert problems_of({"base": base(data), "search": {}})[0].startswith("search is empty")


def test_overrides_reach_the_sweep_and_the_base(data):
    plan = load_sweep({"base": base(data), "search": {"lora.r": [8, 16]}},
                      ["eta=2", "base.train.micro_batch_size=2", "budget.max_steps=7"])
    assert (plan.config.eta, plan.base.train.micro_batch_size, plan.config.budget.max_steps) == (2, 2, 7)
    assert plan.base_raw["train"]["micro_batch_size"] == 2


def test_auto_space_per_method(data):
    lora = load_sweep({"base": base(data)}, auto=True)
    lr = default_learning_rate("sft", "lora")
    assert len(lora.params) == AUTO_TRIALS
    assert [p["lora.r"] for p in lora.params] == (LORA_RANKS * AUTO_TRIALS)[:AUTO_TRIALS]
    assert all(lr / 10 <= p["train.learning_rate"] <= lr * 10 for p in lora.params)
    assert {p["train.patience"] for p in lora.params} == {AUTO_PATIENCE}
    full = load_sweep({"base": base(data, method="full", patience=3)}, auto=True)
    assert all(set(p) == {"train.learning_rate"} for p in full.params)  # no rank; the base's patience stays
    lr = default_learning_rate("sft", "full")
    assert all(lr / 10 <= p["train.learning_rate"] <= lr * 10 for p in full.params)
    mine = load_sweep({"base": base(data), "search": {"lora.r": [4]}, "trials": 2}, auto=True)
    assert {p["lora.r"] for p in mine.params} == {4}  # the sweep file's own key wins


def test_a_plain_train_config_is_its_own_base_under_auto(data, tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({**base(data), "output_dir": str(tmp_path / "run")}))
    plan = load_sweep(str(path), auto=True)
    assert plan.config.auto and plan.config.output_dir == str(tmp_path / "run") + "-sweep"
    assert plan.base.data.train_path == data


def test_the_shipped_example_loads():
    plan = load_sweep(str(ROOT / "examples" / "sweep.yaml"))
    assert plan.base.data.train_path == "bigbench:intent_recognition" and plan.params
    assert plan.base_raw == yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())


def test_cli_reports_config_problems_in_one_line_exit_2(run_cli, data, tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": base(data), "search": {"lora.r": []}}))
    code, _, err = run_cli("sweep", str(path))
    assert code == 2 and "Traceback" not in err
    assert f"{path}: search.lora.r: an empty list tries nothing; give at least one value" in " ".join(err.split())
