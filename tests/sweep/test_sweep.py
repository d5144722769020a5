"""Whole sweeps on a tiny model with a planted search space: one learning rate is clearly best (3e-3 against
1e-5, the base's 1e-4 and a diverging 1.0, for full fine-tuning of a random 2-layer model). The sweep must find
it, stop the bad trials at the first rung, read no test data before the winner is fixed, and give the same
sweep.json when killed mid-rung and run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import sftkit
from sftkit.config import load_config
from sftkit.sweep.trial import config_hash
from tests.helpers import write_sft_data

ROOT = Path(__file__).resolve().parents[2]


def sweep_config(data: Path, model_dir, out: Path) -> dict:
    return {"base": {"model": {"name": str(model_dir)},
                     "data": {"train_path": str(data), "val_fraction": 0.2, "test_fraction": 0.2},
                     "train": {"method": "full", "learning_rate": 1e-4, "micro_batch_size": 4, "warmup_ratio": 0.0,
                               "eval_every": 2, "save_every": 2},
                     "eval": {"max_new_tokens": 4}},
            "search": {"train.learning_rate": [1e-5, 3e-3, 1.0]},
            "budget": {"max_steps": 8}, "rungs": 2, "eta": 2, "output_dir": str(out)}


@pytest.fixture(scope="module")
def planted(tmp_path_factory, tiny_model_dir):
    """One uninterrupted sweep, with every read of a data file recorded with whether the winner was fixed."""
    import sftkit.data.dataset as dataset

    root = tmp_path_factory.mktemp("planted")
    data = write_sft_data(root / "data.jsonl", n=40)
    out = root / "sweep"
    reads = []
    original = dataset.iter_rows

    def recorded(spec):
        state = json.loads((out / "sweep.json").read_text()) if (out / "sweep.json").exists() else {}
        reads.append((str(spec), state.get("winner") is not None))
        return original(spec)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dataset, "iter_rows", recorded)
        result = sftkit.sweep(sweep_config(data, tiny_model_dir, out), quiet=True)
    return {"root": root, "data": data, "out": out, "result": result, "reads": reads}


def test_the_planted_learning_rate_wins_and_the_bad_ones_stop_at_the_first_rung(planted):
    result = planted["result"]
    assert isinstance(result, sftkit.SweepResult) and result.status == "complete"
    trials = {t["name"]: t for t in result.trials}
    assert {n: t["params"] for n, t in trials.items()} == {"base": {}, "t01": {"train.learning_rate": 1e-5},
                                                           "t02": {"train.learning_rate": 3e-3},
                                                           "t03": {"train.learning_rate": 1.0}}
    assert result.winner == "t02" and result.best["params"] == {"train.learning_rate": 3e-3}
    assert result.rungs[0]["kept"] == ["t02", "base"]
    for name in ("t01", "t03"):
        assert (trials[name]["status"], trials[name]["rung"], trials[name]["steps"]) == ("stopped_early", 0, 4)
        assert not (Path(trials[name]["run_dir"]) / "summary.json").exists()
    for name in ("t02", "base"):
        assert (trials[name]["status"], trials[name]["steps"]) == ("finished", 8)
    # the winner beats the base on validation by far more than its second seed moves it
    assert result.base["objective"] - result.best["objective"] > 10 * result.reproduction["objective_spread"]


def test_trials_are_ordinary_run_directories_named_by_their_config_hash(planted):
    out = planted["out"]
    for trial in planted["result"].trials + [planted["result"].reproduction]:
        run = Path(trial["run_dir"])
        config = load_config(str(run / "config.yaml"))
        assert run.parent == out / "trials" and run.name == config_hash(config, out) == trial["id"]
        assert not (run / "checkpoints").exists()  # keep_checkpoints: false
    winner = Path(planted["result"].best["run_dir"])
    assert json.loads((winner / "summary.json").read_text())["steps"] == 8
    assert (winner / "merged" / "model.safetensors").exists()


def test_no_test_data_is_read_before_the_winner_is_fixed(planted):
    out, reads = planted["out"], planted["reads"]
    test_file = str(out / "data" / "test.jsonl")
    assert [fixed for spec, fixed in reads if spec == test_file] == [True]  # read once, after the choice
    assert all(not spec.endswith("test.jsonl") for spec, fixed in reads if not fixed)
    assert reads[0] == (str(planted["data"]), False)  # the one read that splits the data
    test = planted["result"].test
    n = len((out / "data" / "test.jsonl").read_text().splitlines())
    assert test["n"] == n == 8 and set(test["models"]) == {"winner", "base", "reproduction"}
    gain = test["gain_over_base"]
    values = test["models"]["winner"]["values"], test["models"]["base"]["values"]
    assert gain["n"] == n and gain["abs"] == pytest.approx((sum(values[0]) - sum(values[1])) / n, abs=1e-12)


def test_best_config_is_ready_for_sftkit_train(planted):
    path = planted["result"].best_config
    config = load_config(str(path))
    assert config.train.learning_rate == 3e-3 and config.train.max_steps == 8
    assert config.data.train_path == str(planted["data"]) and config.data.test_fraction == 0.2
    assert config.output_dir == str(planted["out"] / "best-run")


def comparable(out: Path) -> dict:
    """sweep.json without durations, with the sweep directory written as OUT."""
    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if not k.endswith("seconds")}
        return [strip(v) for v in node] if isinstance(node, list) else node
    return strip(json.loads((out / "sweep.json").read_text().replace(str(out), "OUT")))


class Killed(BaseException):
    """Raised where `kill -9` would land: nothing catches it, no later line of the sweep runs."""


def test_a_sweep_killed_mid_rung_continues_to_the_same_result(planted, tiny_model_dir, monkeypatch):
    import sftkit.recipes.sft as sft

    out = planted["root"] / "killed"
    config = sweep_config(planted["data"], tiny_model_dir, out)
    winner_dir = str(out / "trials" / planted["result"].best["id"])
    original, steps, killed = sft.train_step, [], []

    def train_step(rt, state, batches):
        steps.append(str(rt.out_dir))
        if str(rt.out_dir) == winner_dir and state.step == 6 and not killed:  # in rung 2 (4 -> 8), checkpoint at 6
            killed.append(True)
            raise Killed
        return original(rt, state, batches)

    monkeypatch.setattr(sft, "train_step", train_step)
    with pytest.raises(Killed):
        sftkit.sweep(config, quiet=True)
    assert json.loads((out / "sweep.json").read_text())["winner"] is None
    steps.clear()
    sftkit.sweep(config, quiet=True)
    # the winner's steps 7 and 8 from its checkpoint at 6, then the 8 steps of the second seed; nothing else
    assert steps.count(winner_dir) == 2 and len(steps) == 2 + 8
    assert comparable(out) == comparable(planted["out"])


def differences(a, b, path: str = "") -> list[str]:
    """Each leaf where `a` and `b` differ, as `path: a != b` (an assertion message that says what differs)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


@pytest.mark.slow
def test_kill_9_mid_rung_then_the_same_command_gives_the_same_sweep_json(planted, tiny_model_dir):
    """Across processes: `kill -9` mid-rung, the same command again, and every byte of sweep.json but durations is
    the uninterrupted sweep's. fp32, as in tests/recipes/test_sft.py's SIGKILL test: at the default precision
    (bf16 autocast on CPUs with native bf16) this comparison once failed on a CI machine in the winner's final
    loss while the fp32 SIGKILL test passed there; it was not reproduced elsewhere (AMX, AVX512-BF16 and AVX2
    kernels tried). The in-process test above covers the default precision bit for bit."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    runs = {}
    for name in ("straight", "killed"):
        out = planted["root"] / f"cli-{name}"
        config = sweep_config(planted["data"], tiny_model_dir, out)
        config["base"]["train"]["precision"] = "fp32"
        (planted["root"] / f"{name}.yaml").write_text(yaml.safe_dump(config))
        runs[name] = out

    def command(name):
        return [sys.executable, "-m", "sftkit.cli", "sweep", str(planted["root"] / f"{name}.yaml")]

    assert subprocess.run(command("straight"), env=env, capture_output=True, timeout=600, cwd=ROOT).returncode == 0
    straight = comparable(runs["straight"])
    assert straight["best"]["name"] == "t02"  # the planted winner at fp32 too
    proc = subprocess.Popen(command("killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    mid_rung = runs["killed"] / "trials" / straight["best"]["id"] / "checkpoints" / "step-0000006"
    deadline = time.time() + 300
    while not mid_rung.exists():
        assert proc.poll() is None and time.time() < deadline, "the sweep ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert subprocess.run(command("killed"), env=env, capture_output=True, timeout=600, cwd=ROOT).returncode == 0
    assert differences(comparable(runs["killed"]), straight) == []
