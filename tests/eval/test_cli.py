"""`sftkit eval` and `sftkit compare` through `sftkit.cli.main`, as the console script runs them."""

from __future__ import annotations

import json

import pytest



@pytest.fixture
def run(run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("SFTKIT_HOME", str(tmp_path / "home"))
    return run_cli


def test_eval_prints_a_table_and_writes_results(run, tiny_model_dir, mc_file, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = run("eval", "--model", str(tiny_model_dir), "--task", str(mc_file), "--output", str(out))
    assert code == 0, stderr
    report = json.loads((out / "eval.json").read_text())
    acc = report["tasks"][str(mc_file)]["acc"]
    assert acc["n"] == 12
    assert "acc_norm" in stdout and f"{acc['value']:.3f}" in stdout
    assert f"[{acc['ci_low']:.3f}, {acc['ci_high']:.3f}]" in stdout
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 12
    code, stdout, _ = run("eval", "--model", str(tiny_model_dir), "--task", str(mc_file), "--output", str(out))
    assert code == 0 and "(cached)" in stdout


@pytest.mark.parametrize("args, message", [
    (["--task", "/no/such/file.jsonl"], "--task /no/such/file.jsonl does not exist"),
    ([], "nothing to evaluate"),
    (["--task", "x.jsonl", "--metric", "bleu"], "unknown metric 'bleu'"),
    (["--task", "x.jsonl", "--extract", "regex:("], "invalid regular expression"),
])
def test_eval_mistakes_exit_2_with_one_line(run, tiny_model_dir, args, message):
    code, _, stderr = run("eval", "--model", str(tiny_model_dir), *args)
    assert code == 2
    assert message in stderr and "Traceback" not in stderr


def test_compare_cli(run, fake_run, mc_file, tmp_path):
    out = tmp_path / "cmp"
    code, stdout, stderr = run("compare", str(fake_run), "--shots", "1", "--output", str(out),
                               "--suite", str(mc_file))
    assert code == 0, stderr
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["test"]["shots"] == 1 and list(comparison["forgetting"]["tasks"]) == [str(mc_file)]
    assert "gain over best prompting" in stdout and "average retention" in stdout
    code, _, stderr = run("compare", str(tmp_path / "missing"))
    assert code == 2 and f"run directory {tmp_path / 'missing'} does not exist" in stderr
