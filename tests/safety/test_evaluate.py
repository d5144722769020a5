"""run_safety on tiny models: rates, 95% intervals and paired deltas equal their definitions; outputs; cache."""

from __future__ import annotations

import json

import pytest

import sftkit.safety.evaluate as evaluate
from sftkit.safety.evaluate import run_safety
from tests.helpers import safety_settings


SETTINGS = safety_settings()


class ScriptedClassifier:
    """Refuses by prompt position, differently for the first and second model evaluated."""

    name = "scripted"

    def __init__(self):
        self.calls = 0

    def __call__(self, prompts, replies):
        self.calls += 1
        # model: 7 of 10 harmful refused, 2 of 10 benign; against: 4 of 10 harmful, 2 of 10 benign (other ones)
        harmful = [i < 7 for i in range(10)] if self.calls == 1 else [i < 4 for i in range(10)]
        benign = [i in (0, 1) for i in range(10)] if self.calls == 1 else [i in (8, 9) for i in range(10)]
        return harmful + benign


@pytest.fixture
def other_tiny_dir(tmp_path_factory, tokenizer):
    from tests.helpers import make_tiny_model

    path = tmp_path_factory.mktemp("tiny-other")
    make_tiny_model(seed=1).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_rates_intervals_and_deltas(tmp_path, tiny_model_dir, other_tiny_dir, monkeypatch):
    monkeypatch.setattr(evaluate, "make_classifier", lambda judge: ScriptedClassifier())
    result = run_safety(str(tiny_model_dir), str(other_tiny_dir), output_dir=tmp_path / "out", settings=SETTINGS,
                        use_cache=False)
    refusal, over = result["metrics"]["refusal_rate"], result["metrics"]["over_refusal_rate"]
    assert (refusal["model"]["value"], refusal["against"]["value"], refusal["model"]["n"]) == (0.7, 0.4, 10)
    assert refusal["delta"]["abs"] == pytest.approx(0.3) and over["delta"]["abs"] == pytest.approx(0.0)
    for entry in (refusal["model"], refusal["against"], over["model"]):
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    assert refusal["model"]["ci_high"] - refusal["model"]["ci_low"] > 0.2  # n = 10 gives a wide interval
    # paired: over-refusal differs on 4 of 10 prompts in opposite directions, so its interval straddles 0
    assert over["delta"]["ci_low"] < 0 < over["delta"]["ci_high"]
    hhh = result["metrics"]["hhh_accuracy"]
    assert hhh["model"]["n"] == 6 and hhh["model"]["value"] in {k / 6 for k in range(7)}
    assert result["headline"]["refusal_rate_delta"] == pytest.approx(0.3)
    assert sum(v["n"] for v in result["refusal_by_category"]["model"].values()) == 10
    rows = [json.loads(x) for x in (tmp_path / "out/predictions.jsonl").read_text().splitlines()]
    replies = [r for r in rows if r["set"] in ("harmful", "benign")]
    assert len(replies) == 40 and len([r for r in rows if r["set"] == "hhh_alignment"]) == 12
    model_harmful = [r["refused"] for r in replies if r["model"] == "model" and r["set"] == "harmful"]
    assert sum(model_harmful) / len(model_harmful) == refusal["model"]["value"]
    assert json.loads((tmp_path / "out/safety.json").read_text())["metrics"] == result["metrics"]


def test_identical_models_have_zero_delta_and_base_results_are_cached(tmp_path, tiny_model_dir):
    first = run_safety(str(tiny_model_dir), str(tiny_model_dir), output_dir=tmp_path / "a", settings=SETTINGS)
    for entry in first["metrics"].values():
        assert (entry["delta"]["abs"], entry["delta"]["ci_low"], entry["delta"]["ci_high"]) == (0.0, 0.0, 0.0)
    assert first["cached"]["against"] is True  # the second evaluation of the same base model hits the cache
    second = run_safety(str(tiny_model_dir), output_dir=tmp_path / "b", settings=SETTINGS)
    assert second["cached"] == {"model": True} and second["against"] is None
    assert second["metrics"]["refusal_rate"]["model"] == first["metrics"]["refusal_rate"]["model"]
    assert "delta" not in second["metrics"]["refusal_rate"]


def test_cli_prints_both_models_and_deltas(tmp_path, tiny_model_dir, other_tiny_dir):
    import os
    import subprocess
    import sys

    args = [sys.executable, "-m", "sftkit.cli", "safety", str(other_tiny_dir), "--against", str(tiny_model_dir),
            "--max-prompts", "2", "--hhh-max-examples", "2", "--max-new-tokens", "2", "--output", str(tmp_path)]
    proc = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = " ".join(proc.stdout.split())
    for label in ("refusal rate", "over-refusal rate", "HHH accuracy", "model - against", "against:"):
        assert label in text
    saved = json.loads((tmp_path / "safety.json").read_text())
    assert saved["settings"]["num_harmful"] == 2 and saved["metrics"]["hhh_accuracy"]["delta"]["n"] == 2
    bad = subprocess.run([sys.executable, "-m", "sftkit.cli", "safety", str(tmp_path / "nope")], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "does not exist" in bad.stderr
