import json

import numpy as np
import pytest

from sftkit.errors import UserError
from sftkit.eval.compare import run_compare
from sftkit.eval.report import print_comparison


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTKIT_HOME", str(tmp_path / "home"))


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_compare_reports_baselines_gain_and_forgetting(home, fake_run, tiny_model_dir, mc_file, text_file, tmp_path,
                                                      monkeypatch):
    import sftkit.models

    loads = []
    real = sftkit.models.load_for_inference
    monkeypatch.setattr(sftkit.models, "load_for_inference", lambda name, *a, **k: loads.append(name) or real(name, *a, **k))
    out = tmp_path / "cmp"
    suite = [str(mc_file), f"perplexity:{text_file}"]
    comparison = run_compare(fake_run, output_dir=out, suite=suite)
    assert json.loads((out / "comparison.json").read_text())["gain_over_prompting"] == comparison["gain_over_prompting"]

    assert comparison["test"]["n"] == 6 and comparison["test"]["shots"] == 2  # shots from the run's config.yaml
    acc = comparison["accuracy"]
    assert set(acc) == {"base_zero_shot", "base_k_shot", "tuned"}
    best = comparison["best_baseline"]
    assert acc[best]["value"] == max(acc["base_zero_shot"]["value"], acc["base_k_shot"]["value"])
    gain = comparison["gain_over_prompting"]
    assert gain["abs"] == pytest.approx(acc["tuned"]["value"] - acc[best]["value"])
    assert gain["ci_low"] <= gain["abs"] <= gain["ci_high"] and gain["baseline"] == best

    forgetting = comparison["forgetting"]
    assert list(forgetting["tasks"]) == suite
    mc = forgetting["tasks"][str(mc_file)]
    assert mc["metric"] == "acc" and mc["base"]["n"] == 12
    assert mc["delta"] == pytest.approx(mc["tuned"]["value"] - mc["base"]["value"])
    ppl = forgetting["tasks"][f"perplexity:{text_file}"]
    assert ppl["retention"] == pytest.approx(ppl["base"]["value"] / ppl["tuned"]["value"])
    retentions = [t["retention"] for t in forgetting["tasks"].values() if t["retention"] is not None]
    assert comparison["retention"] == pytest.approx(np.mean(retentions))
    assert forgetting["flagged"] == [name for name, t in forgetting["tasks"].items() if t["flagged"]]

    rows = _rows(out / "predictions.jsonl")
    by_model = {}
    for r in rows:
        by_model.setdefault((r["model"], r["task"]), []).append(r)
    assert len(by_model[("base_k_shot", str(fake_run / "data" / "test.jsonl") + " (2-shot)")]) == 6
    base_mc, tuned_mc = by_model[("base", str(mc_file))], by_model[("tuned", str(mc_file))]
    # the tuned model really is the adapter: its log-probabilities differ from the base model's
    assert base_mc[0]["choice_logprobs"] != tuned_mc[0]["choice_logprobs"]
    k_shot_prompt = by_model[("base_k_shot", str(fake_run / "data" / "test.jsonl") + " (2-shot)")][0]["prompt"]
    assert k_shot_prompt.count("<|im_start|>user") == 3
    assert loads == [str(tiny_model_dir), str(fake_run)]  # base (from summary.json), then the run

    # a second comparison reuses every base-model result: only the tuned model loads
    loads.clear()
    again = run_compare(fake_run, output_dir=tmp_path / "cmp2", suite=suite)
    assert loads == [str(fake_run)]
    assert again["accuracy"] == comparison["accuracy"] and again["retention"] == comparison["retention"]
    print_comparison(comparison)


def test_compare_needs_test_data_and_a_run_directory(home, fake_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(fake_run, run)
    (run / "data" / "test.jsonl").unlink()
    with pytest.raises(UserError, match="data.test_fraction > 0"):
        run_compare(run, suite=[])
    with pytest.raises(UserError, match="not a run directory"):
        run_compare(tmp_path / "nothing", suite=[])


def test_compare_with_a_given_test_file_and_no_shots_or_suite(home, fake_run, tmp_path):
    test = tmp_path / "t.jsonl"
    test.write_text(json.dumps({"messages": [{"role": "user", "content": "Say hi"},
                                             {"role": "assistant", "content": "hi"}]}) + "\n")
    comparison = run_compare(fake_run, test_path=str(test), shots=0, suite=[], output_dir=tmp_path / "o")
    assert set(comparison["accuracy"]) == {"base_zero_shot", "tuned"}
    assert comparison["test"]["n"] == 1 and comparison["forgetting"] is None and comparison["retention"] is None
