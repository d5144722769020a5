"""Drift against a run's training prompts: the length range and nearest-neighbour threshold are the training
prompts' own 1st/99th percentiles, a training prompt is near, and an unlike prompt is far."""

from __future__ import annotations

import json
import math

import numpy as np

from sftkit.serve.drift import DriftReference, training_prompts

PROMPTS = [f"Utterance: play song number {i} by the band {'x' * (i % 7)}" for i in range(60)]
# a float32 dot product of a unit vector with itself: 256 products, each rounded to 2**-24 relative
SELF_SIMILARITY_TOLERANCE = 256 * 2**-24


def test_reference_is_calibrated_on_the_training_prompts(tokenizer):
    reference = DriftReference(PROMPTS, tokenizer, "hashed")
    lengths = [len(tokenizer.encode(p, add_special_tokens=False)) for p in PROMPTS]
    assert (reference.low, reference.high) == (np.percentile(lengths, 1), np.percentile(lengths, 99))
    similarities = reference.vectors @ reference.vectors.T
    np.fill_diagonal(similarities, -np.inf)
    nearest = similarities.max(axis=1)
    assert reference.threshold == float(np.percentile(nearest, 1))
    # below a linearly interpolated 1st percentile of n values lie at most ceil(0.01 (n - 1)) of them
    assert (nearest < reference.threshold).sum() <= math.ceil(0.01 * (len(PROMPTS) - 1))


def test_a_training_prompt_is_near_and_an_unlike_prompt_is_far(tokenizer):
    reference = DriftReference(PROMPTS, tokenizer, "hashed")
    near = reference.score(PROMPTS[5])
    assert abs(near.similarity - 1.0) <= SELF_SIMILARITY_TOLERANCE
    assert (near.length_far, near.embedding_far) == (False, False)
    far = reference.score("Summarise the quarterly tax regulations of small island nations, with sources. " * 3)
    assert far.length_far and far.embedding_far and far.similarity < reference.threshold
    assert far.record() == {"prompt_tokens": far.num_tokens, "length_far": True,
                            "similarity": round(far.similarity, 4), "embedding_far": True}
    length_only = DriftReference(PROMPTS, tokenizer, "none").score("hello")
    assert length_only.similarity is None and length_only.record() == {"prompt_tokens": 1, "length_far": True}


def test_training_prompts_are_the_last_user_turns(tmp_path, tokenizer):
    (tmp_path / "data").mkdir()
    rows = [{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "first"},
                          {"role": "assistant", "content": "a"}, {"role": "user", "content": "second"},
                          {"role": "assistant", "content": "b"}]},
            {"messages": [{"role": "user", "content": "third"}, {"role": "assistant", "content": "c"}]}]
    (tmp_path / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert training_prompts(tmp_path) == ["second", "third"]
    assert training_prompts(tmp_path / "nowhere") == []
    assert DriftReference.for_run(tmp_path / "nowhere", tokenizer, "auto") is None
