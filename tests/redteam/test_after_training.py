"""`eval.redteam: true` in an SFT config: the suite runs against the starting model at the end of training and
its headline lands in summary.json (and in the TrainResult)."""

from __future__ import annotations

import json

import sftkit
from tests.helpers import arithmetic_conversation

ROWS = [arithmetic_conversation(i) for i in range(10)]


def test_eval_redteam_puts_the_headline_in_summary(tmp_path, tiny_model_dir, monkeypatch):
    from sftkit.redteam import evaluate

    small = evaluate.RedteamSettings(max_seeds=3, attacks=["direct", "base64"], max_new_tokens=2, engaged=False)
    real = evaluate.run_redteam
    monkeypatch.setattr(evaluate, "run_redteam", lambda *a, **k: real(*a, settings=small, **k))
    monkeypatch.setenv("SFTKIT_HOME", str(tmp_path / "home"))
    run = tmp_path / "run"
    result = sftkit.train({"model": {"name": str(tiny_model_dir)}, "output_dir": str(run), "eval": {"redteam": True},
                           "train": {"max_steps": 1, "micro_batch_size": 2, "eval_every": 1}},
                          overrides=["data.val_fraction=0.2"], train_data=ROWS, quiet=True)
    full = json.loads((run / "redteam" / "redteam.json").read_text())
    assert result.redteam == json.loads((run / "summary.json").read_text())["redteam"]
    assert result.redteam == {**full["headline"], "output_dir": str(run / "redteam")}
    assert full["against"] == str(tiny_model_dir) and full["model"].startswith(str(run))
    assert {"direct_success", "any_attack_success", "num_attacks", "direct_success_delta"} <= set(result.redteam)
    assert result.safety is None and result.gain_over_prompting is None
