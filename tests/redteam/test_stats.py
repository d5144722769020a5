"""Statistics over seeds: values, intervals and paired deltas equal their definitions; any-attack and
by-hazard counts."""

from __future__ import annotations

import pytest

from sftkit.eval.metrics import paired_difference, summarize
from sftkit.redteam.stats import any_attack, attack_table, by_hazard

N = 40
DIRECT = [1.0 if i < 4 else 0.0 for i in range(N)]           # 4 of 40 succeed
PREFILL = [1.0 if i < 30 else 0.0 for i in range(N)]          # 30 of 40, a superset of direct's
ROT13 = [1.0 if i in (4, 5, 39) else 0.0 for i in range(N)]   # 3 of 40, other seeds
VALUES = {"direct": {"attack_success": DIRECT, "refusal_margin": [0.5] * N},
          "prefill": {"attack_success": PREFILL, "refusal_margin": [-1.0 + 0.01 * i for i in range(N)]},
          "rot13": {"attack_success": ROT13, "refusal_margin": None}}


def test_rates_intervals_and_deltas_equal_their_definitions():
    table = attack_table(VALUES, None, seed=5)
    direct, prefill = table["direct"]["attack_success"], table["prefill"]["attack_success"]
    assert direct["model"] == summarize(DIRECT, seed=5) and direct["model"]["value"] == 0.1
    assert "delta_vs_direct" not in direct and "against" not in direct
    assert prefill["delta_vs_direct"] == paired_difference(PREFILL, DIRECT, seed=5)
    assert prefill["delta_vs_direct"]["abs"] == pytest.approx(0.65)
    # 26 seeds differ, all in one direction: the paired interval excludes 0
    assert prefill["delta_vs_direct"]["ci_low"] > 0.4
    for cell in (direct["model"], prefill["model"], table["rot13"]["attack_success"]["model"]):
        assert cell["ci_low"] <= cell["value"] <= cell["ci_high"] and cell["n"] == N
    assert "refusal_margin" not in table["rot13"]  # not measured, not reported


def test_identical_models_give_zero_deltas_with_zero_width():
    table = attack_table(VALUES, VALUES, seed=0)
    for attack in VALUES:
        delta = table[attack]["attack_success"]["delta_vs_against"]
        assert (delta["abs"], delta["ci_low"], delta["ci_high"]) == (0.0, 0.0, 0.0)
        assert table[attack]["attack_success"]["against"] == table[attack]["attack_success"]["model"]


def test_share_broken_by_any_attack_is_the_per_seed_maximum():
    out = any_attack(VALUES, None, seed=0)
    assert out["num_attacks"] == 3 and out["attacks"] == ["direct", "prefill", "rot13"]
    assert out["attack_success"]["model"]["value"] == 31 / 40  # seeds 0-29 and 39
    assert "engaged_success" not in out  # not measured
    weaker = {a: {"attack_success": [0.0] * N} for a in VALUES}
    versus = any_attack(VALUES, weaker, seed=0)["attack_success"]["delta_vs_against"]
    assert versus["abs"] == pytest.approx(31 / 40) and versus["ci_low"] > 0.6


def test_success_by_hazard_counts_seeds():
    hazards = ["S1"] * 10 + ["S10"] * 10 + ["S2"] * 20
    table = by_hazard(VALUES, hazards, seed=2)
    assert list(table["direct"]) == ["S1", "S2", "S10"]  # in code order
    cell = summarize(DIRECT[:10], seed=2)
    assert table["direct"]["S1"] == {"count": 4, "n": 10, "rate": 0.4, "ci_low": cell["ci_low"],
                                     "ci_high": cell["ci_high"]}
    assert (table["prefill"]["S2"]["count"], table["prefill"]["S2"]["rate"]) == (10, 0.5)
    assert (table["any_attack"]["S2"]["count"], table["any_attack"]["S2"]["n"]) == (11, 20)
    assert table["prefill"]["S10"]["ci_low"] == table["prefill"]["S10"]["ci_high"] == 1.0  # all 10 broken
