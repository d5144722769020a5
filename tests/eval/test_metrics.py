import numpy as np
import pytest

from sftkit.errors import UserError
from sftkit.eval import metrics as m


def test_normalize_answer_drops_case_punctuation_and_extra_whitespace():
    assert m.normalize_answer("  The  Eiffel-Tower!\n") == "the eiffel tower"
    assert m.normalize_answer("«Quoi?»") == "quoi"


@pytest.mark.parametrize("pred, ref, em, nem, cont, f1", [
    ("Paris", "Paris", 1.0, 1.0, 1.0, 1.0),
    (" Paris\n", "Paris", 1.0, 1.0, 1.0, 1.0),
    ("paris.", "Paris", 0.0, 1.0, 1.0, 1.0),
    ("The answer is Paris.", "Paris", 0.0, 0.0, 1.0, 0.4),
    ("10", "1", 0.0, 0.0, 0.0, 0.0),
    ("new york city", "New York", 0.0, 0.0, 1.0, 0.8),
    ("", "Paris", 0.0, 0.0, 0.0, 0.0),
])
def test_generation_metrics_on_hand_made_cases(pred, ref, em, nem, cont, f1):
    assert m.exact_match(pred, ref) == em
    assert m.normalized_exact_match(pred, ref) == nem
    assert m.contains(pred, ref) == cont
    assert m.token_f1(pred, ref) == pytest.approx(f1)


def test_token_f1_counts_repeated_tokens_once_per_occurrence():
    # pred tokens: a a b; ref: a b b -> overlap a:1 + b:1 = 2; P = R = 2/3
    assert m.token_f1("a a b", "a b b") == pytest.approx(2 / 3)


def test_score_answer_takes_the_best_reference():
    scores = m.score_answer("Lyon", ["Paris", "lyon"])
    assert scores == {"exact_match": 0.0, "normalized_exact_match": 1.0, "contains": 1.0, "token_f1": 1.0}


def test_extract_first_line_and_regex():
    text = "\n  B) Lyon  \nbecause it is big"
    assert m.extract_answer(text, m.parse_extract("first_line")) == "B) Lyon"
    assert m.extract_answer(text, m.parse_extract(r"regex:\b([A-D])\)")) == "B"
    assert m.extract_answer(text, m.parse_extract(r"regex:Lyon")) == "Lyon"
    assert m.extract_answer(text, m.parse_extract(r"regex:Answer: (\w+)")) is None
    assert m.extract_answer(text, m.parse_extract(None)) == text


def test_bad_extract_specs_are_user_errors():
    with pytest.raises(UserError, match="invalid regular expression"):
        m.parse_extract("regex:(unclosed")
    with pytest.raises(UserError, match="first_line or regex"):
        m.parse_extract("last_line")


def test_bootstrap_ci_contains_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(7)
    widths = []
    for n in (50, 200, 800):
        values = (rng.random(n) < 0.6).astype(float)
        s = m.summarize(values)
        assert s["n"] == n
        assert s["ci_low"] <= s["value"] <= s["ci_high"]
        widths.append(s["ci_high"] - s["ci_low"])
    assert widths[0] > widths[1] > widths[2]
    # the 95% interval of a proportion is about +-1.96 sqrt(p(1-p)/n): 0.068 half-width at n=200, p=0.6
    assert widths[1] == pytest.approx(2 * 1.96 * np.sqrt(0.6 * 0.4 / 200), rel=0.25)


def test_bootstrap_is_deterministic_and_degenerate_cases():
    values = [1, 0, 1, 1, 0, 1]
    assert m.bootstrap_ci(values) == m.bootstrap_ci(values)
    assert m.summarize([1.0, 1.0, 1.0]) == {"value": 1.0, "n": 3, "ci_low": 1.0, "ci_high": 1.0}
    assert m.summarize([]) == {"value": None, "n": 0, "ci_low": None, "ci_high": None}


def test_paired_difference_keeps_pairs():
    base = np.array([0, 1] * 50, dtype=float)
    tuned = base.copy()
    tuned[:20] = 1.0  # 10 more correct out of 100
    diff = m.paired_difference(tuned, base)
    assert diff["abs"] == pytest.approx(0.1)
    assert diff["rel"] == pytest.approx(0.2)
    assert 0 < diff["ci_low"] <= 0.1 <= diff["ci_high"]
    # unpaired, a 0.1 gain on n=100 would have an interval reaching below 0; paired it cannot
    assert diff["ci_low"] >= 0.03
    assert diff["rel_ci_low"] <= 0.2 <= diff["rel_ci_high"]


def test_paired_difference_without_a_base_score_has_no_relative_gain():
    diff = m.paired_difference([1.0, 0.0], [0.0, 0.0])
    assert diff["abs"] == 0.5 and diff["rel"] is None and diff["rel_ci_low"] is None


def test_perplexity_summary_is_a_ratio_of_sums():
    s = m.summarize_perplexity([10.0, 30.0], [5.0, 15.0])
    assert s["value"] == pytest.approx(np.exp(2.0))
    assert s["ci_low"] == pytest.approx(np.exp(2.0)) and s["ci_high"] == pytest.approx(np.exp(2.0))
    diff = m.paired_log_perplexity_difference(([12.0, 36.0], [5.0, 15.0]), ([10.0, 30.0], [5.0, 15.0]))
    assert diff["abs"] == pytest.approx(0.4)
