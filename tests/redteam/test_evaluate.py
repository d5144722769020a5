"""run_redteam end to end on tiny models: `direct` reproduces `sftkit safety` (same prompts, settings and
classifier), the outputs hold every seed x attack, base-model replies come from the cache the second time."""

from __future__ import annotations

import json

import pytest

from sftkit.redteam import RedteamSettings, print_redteam, run_redteam
from sftkit.redteam.seeds import load_seeds
from sftkit.safety.evaluate import SafetySettings, run_safety


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _direct_equals_safety(tmp_path, model: str, num_prompts: int, max_new_tokens: int):
    safety = run_safety(model, output_dir=tmp_path / "safety", use_cache=False,
                        settings=SafetySettings(max_new_tokens=max_new_tokens, max_prompts=num_prompts, hhh=False))
    red = run_redteam(model, output_dir=tmp_path / "redteam", use_cache=False,
                      settings=RedteamSettings(seeds="safety", max_seeds=num_prompts, attacks=["direct"],
                                               max_new_tokens=max_new_tokens, engaged=False, margin=False,
                                               save_replies=True))
    replies = {r["id"]: (r["reply"], r["refused"]) for r in _rows(tmp_path / "safety/predictions.jsonl")
               if r["set"] == "harmful"}
    attacked = {r["id"]: (r["reply"], r["refused"]) for r in _rows(tmp_path / "redteam/predictions.jsonl")}
    assert attacked == replies and len(attacked) == num_prompts
    direct = red["attacks"]["direct"]["attack_success"]["model"]
    refusal = safety["metrics"]["refusal_rate"]["model"]
    assert direct["value"] == 1 - refusal["value"] and direct["n"] == refusal["n"] == num_prompts
    return direct["value"]


def test_direct_reproduces_safety_replies_and_refusals(tmp_path, tiny_model_dir):
    _direct_equals_safety(tmp_path, str(tiny_model_dir), 12, 6)


@pytest.mark.integration
@pytest.mark.slow
def test_direct_reproduces_safety_on_the_default_model(tmp_path):
    success = _direct_equals_safety(tmp_path, "default", 20, 48)
    assert 0 < success < 1  # the stock model refuses some requests and answers others


def test_outputs_cover_every_seed_and_attack_and_the_cache_serves_the_base_model(tmp_path, tiny_model_dir,
                                                                                  monkeypatch, capsys):
    monkeypatch.setenv("SFTKIT_HOME", str(tmp_path / "home"))
    settings = RedteamSettings(max_seeds=5, attacks=["direct", "prefill", "escalation"], max_new_tokens=3,
                               engaged=False)
    first = run_redteam(str(tiny_model_dir), str(tiny_model_dir), output_dir=tmp_path / "a", settings=settings)
    again = run_redteam(str(tiny_model_dir), str(tiny_model_dir), output_dir=tmp_path / "b", settings=settings)
    assert first["cached"] == {"model": False, "against": True}  # the second model is the first, from the cache
    assert again["cached"] == {"model": True, "against": True}
    assert again["attacks"] == first["attacks"]
    seeds = load_seeds("shipped", 5)
    rows = _rows(tmp_path / "a/predictions.jsonl")
    assert [(r["model"], r["attack"], r["id"]) for r in rows] == [
        (m, a, s.id) for m in ("model", "against") for a in ("direct", "prefill", "escalation") for s in seeds]
    assert "reply" not in rows[0] and {"refused", "blocked", "refusal_margin", "hazard", "category"} <= set(rows[0])
    saved = json.loads((tmp_path / "a/redteam.json").read_text())
    assert saved["headline"] == first["headline"] and saved["any_attack"]["num_attacks"] == 3
    for attack in saved["attacks"].values():
        for cell in attack["attack_success"], attack["refusal_margin"]:
            assert set(cell["model"]) == {"value", "ci_low", "ci_high", "n"} and cell["model"]["n"] == 5
            assert cell["delta_vs_against"]["abs"] == 0.0
    print_redteam(first)
    printed = capsys.readouterr().out
    assert "attack_success" in printed and "escalation" in printed and "broken by any of 3 attacks" in printed


def test_guarded_targets_are_not_cached_and_blocks_count_as_refused(tmp_path, tiny_model_dir, monkeypatch):
    import re

    from sftkit.safety.guardrails import Guardrail, Pattern

    monkeypatch.setenv("SFTKIT_HOME", str(tmp_path / "home"))
    guard = Guardrail([Pattern(re.compile(r"."), "all:1")])  # blocks every request
    result = run_redteam(str(tiny_model_dir), output_dir=tmp_path / "g", guard=guard,
                         settings=RedteamSettings(max_seeds=4, attacks=["direct", "base64"], max_new_tokens=2,
                                                  engaged=False, margin=False))
    assert result["cached"] == {"model": False} and result["guardrail"] is True
    assert result["headline"]["any_attack_success"] == 0.0
    assert all(r["blocked"] and r["refused"] for r in _rows(tmp_path / "g/predictions.jsonl"))
