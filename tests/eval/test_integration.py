"""The acceptance command on the real default model (a subsample, to stay fast)."""

import json
import sys

import pytest

from sftkit import cli


@pytest.mark.integration
def test_eval_default_model_on_bigbench_general_knowledge(monkeypatch, capsys, tmp_path):
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["sftkit", "eval", "--model", "default", "--task", "bigbench:general_knowledge",
                                      "--max-examples", "12", "--no-cache", "--output", str(out)])
    cli.main()
    stdout = capsys.readouterr().out
    report = json.loads((out / "eval.json").read_text())
    task = report["tasks"]["bigbench:general_knowledge"]
    for metric in ("acc", "acc_norm"):
        s = task[metric]
        assert s["n"] == 12 and s["ci_low"] <= s["value"] <= s["ci_high"]
        assert metric in stdout and f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]" in stdout
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    assert all(r["prompt"].startswith("\nQ: ") and r["prompt"].endswith("\nA: ") for r in rows)
    assert all(len(r["choice_logprobs"]) == len(r["choices"]) and max(r["choice_logprobs"]) < 0 for r in rows)


@pytest.mark.integration
def test_bigbench_choice_logprobs_equal_plain_transformers_on_the_default_model(tmp_path):
    """The acceptance check of bench/choice_check.py on a subsample: each choice scored after one space."""
    from bench.choice_check import PlainScorer, check_rows, run_eval
    from sftkit.models import default_model_dir

    rows = run_eval("default", "bigbench:physical_intuition", 12, tmp_path / "out")
    scorer = PlainScorer(str(default_model_dir()))
    result = check_rows(scorer, rows)
    assert result["num_rows"] == 12 and result["failures"] == []
    assert all(r["prompt"].endswith("\nA: ") and r["delimiter"] == "" for r in rows)
    first = scorer.score(rows[0]["prompt"], rows[0]["prompt"] + rows[0]["choices"][0])
    assert first["tokens"] == ["Ġ" + rows[0]["choices"][0]]
