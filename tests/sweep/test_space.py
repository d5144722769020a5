"""The search space: grids, tied choices, seeded samples, and every problem at once."""

from __future__ import annotations

import math

import pytest

from sftkit.sweep.space import Distribution, parse_space


def space(search: dict):
    parsed, problems = parse_space(search)
    assert problems == []
    return parsed


def test_lists_are_a_grid_in_order_first_axis_slowest():
    s = space({"train.method": ["lora", "full"], "lora.r": [8, 16]})
    assert s.grid_size == 4 and not s.has_distributions
    assert s.params(None, 0) == [{"train.method": "lora", "lora.r": 8}, {"train.method": "lora", "lora.r": 16},
                                 {"train.method": "full", "lora.r": 8}, {"train.method": "full", "lora.r": 16}]


def test_fewer_trials_than_grid_points_is_a_seeded_subset_in_grid_order():
    s = space({"train.learning_rate": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]})
    picked = s.params(3, seed=7)
    assert len(picked) == 3 and picked == s.params(3, seed=7)
    values = [p["train.learning_rate"] for p in picked]
    assert values == sorted(values) and set(values) <= {1e-5, 1e-4, 1e-3, 1e-2, 1e-1}


def test_samples_depend_on_seed_and_index_only_and_keep_three_digits():
    s = space({"train.learning_rate": {"log_uniform": [1e-5, 3e-3]}, "lora.r": [8, 16, 64]})
    five, three = s.params(5, seed=0), s.params(3, seed=0)
    assert five[:3] == three  # trial i draws the same whatever the number of trials
    assert [p["lora.r"] for p in five] == [8, 16, 64, 8, 16]  # round-robin over the grid
    for p in five:
        lr = p["train.learning_rate"]
        assert 1e-5 <= lr <= 3e-3 and lr == float(f"{lr:.3g}")
    assert s.params(5, seed=1) != five


def test_distributions_sample_inside_their_bounds():
    import numpy as np

    rng = np.random.default_rng(0)
    ints = {Distribution("int_uniform", 2, 4).sample(rng) for _ in range(200)}
    assert ints == {2, 3, 4}
    floats = [Distribution("uniform", 0.1, 0.2).sample(rng) for _ in range(200)]
    assert min(floats) >= 0.1 and max(floats) <= 0.2
    logs = [math.log10(Distribution("log_uniform", 1e-6, 1e-2).sample(rng)) for _ in range(2000)]
    # uniform in log space: a quarter of the draws in each decade of four (binomial sd ~ 0.01)
    assert abs(sum(-6 <= x < -5 for x in logs) / 2000 - 0.25) < 0.05


def test_tied_options_set_several_keys_and_may_hold_distributions():
    s = space({"train.method, train.learning_rate": [["lora", {"log_uniform": [1e-4, 1e-2]}], ["full", 1e-4]]})
    trials = s.params(4, seed=0)
    assert [t["train.method"] for t in trials] == ["lora", "full", "lora", "full"]
    assert [t["train.learning_rate"] for t in trials][1::2] == [1e-4, 1e-4]
    assert all(1e-4 <= t["train.learning_rate"] <= 1e-2 for t in trials[::2])


def test_log_grid_and_fixed_values():
    s = space({"train.learning_rate": {"log_grid": [1e-4, 1e-2, 5]}, "train.patience": 2})
    assert [p["train.learning_rate"] for p in s.params(None, 0)] == [1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2]
    assert {p["train.patience"] for p in s.params(None, 0)} == {2}


@pytest.mark.parametrize("search, problem", [
    ({"a": []}, "search.a: an empty list tries nothing"),
    ({"a": {"log_uniform": [0, 1]}}, "search.a: log_uniform needs low > 0 (got 0)"),
    ({"a": {"log_unifrm": [1, 2]}}, "search.a: unknown distribution 'log_unifrm'"),
    ({"a, b": [[1]]}, "search.a, b: a tied choice takes a list of options, each a list of 2 values"),
    ({"a, a": [[1, 2]]}, "search.a, a: name each setting once"),
    ({"a": {"uniform": [2, 1]}}, "search.a: uniform takes [low, high] with low < high (got [2, 1])"),
    ({"a": {"int_uniform": [1.5, 3]}}, "search.a: int_uniform takes whole numbers"),
    ({"a": {"log_grid": [1e-3, 1e-4, 3]}}, "search.a: log_grid takes [low, high, n]"),
    ({"a": [{"log_grid": [1e-4, 1e-3, 3]}]}, "search.a: log_grid is a whole axis"),
])
def test_each_problem_names_its_key_and_the_fix(search, problem):
    _, problems = parse_space(search)
    assert len(problems) == 1 and problems[0].startswith(problem)


def test_all_problems_at_once():
    _, problems = parse_space({"a": [], "b": {"uniform": [1, 1]}, "c": [1, 2]})
    assert [p.split(":")[0] for p in problems] == ["search.a", "search.b"]
