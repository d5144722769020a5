"""The shipped prompt sets: sizes, categories, no duplicates, no overlap with the example preference data."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from sftkit.errors import UserError
from sftkit.safety.prompts import fingerprint, load_prompts

ROOT = Path(__file__).resolve().parents[2]


def test_sizes_and_categories():
    harmful, benign = load_prompts("harmful"), load_prompts("benign")
    assert (len(harmful), len(benign)) == (60, 60)
    assert set(Counter(p.category for p in harmful).values()) == {6} and len({p.category for p in harmful}) == 10
    assert set(Counter(p.category for p in benign).values()) == {10} and len({p.category for p in benign}) == 6
    everything = harmful + benign
    assert len({p.id for p in everything}) == len({p.prompt.lower() for p in everything}) == 120


def test_stratified_subsample_keeps_every_category():
    picked = load_prompts("harmful", max_prompts=12, seed=3)
    assert len(picked) == 12
    assert sorted(Counter(p.category for p in picked).values()) == [1] * 8 + [2] * 2  # all 10 categories
    assert picked == load_prompts("harmful", max_prompts=12, seed=3)  # seeded
    assert fingerprint(picked) != fingerprint(load_prompts("harmful", max_prompts=12, seed=4))


def test_unknown_set():
    with pytest.raises(UserError, match="unknown safety prompt set 'harmfull'"):
        load_prompts("harmfull")


def test_example_preferences_do_not_contain_evaluation_prompts():
    rows = [json.loads(x) for x in (ROOT / "examples/data/preferences.jsonl").read_text().splitlines()]
    asked = {(r.get("prompt") or r["messages"][-1]["content"]).lower() for r in rows}
    shipped = {p.prompt.lower() for p in load_prompts("harmful") + load_prompts("benign")}
    assert len(asked) == 90 and not asked & shipped
