"""Curation: the `curate:` config, selection to a budget (cluster-balanced), and IFD scoring on a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sftkit.curate.config import CurateConfig, load_curate_config
from sftkit.curate.select import select, water_fill
from sftkit.errors import ConfigError


def test_config_file_section_overrides_and_inheritance(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  name: my/model\ndata:\n  max_length: 512\ntrain:\n  max_steps: 3\n"
                    "curate:\n  pii: mask\n  near:\n    threshold: 0.7\n")
    cfg = load_curate_config(str(path), ["near.ngram_words=3", "curate.select.target=10"])
    assert (cfg.pii.action, cfg.near.threshold, cfg.near.ngram_words, cfg.select.target) == ("mask", 0.7, 3, 10)
    assert (cfg.model_name, cfg.max_length_tokens) == ("my/model", 512)
    assert (CurateConfig().model_name, CurateConfig().max_length_tokens) == ("default", 1024)


def test_config_problems_are_reported_together_with_did_you_mean(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("curat:\n  near: {}\ncurate:\n  qualty: {}\n  near:\n    threshold: 1.5\n")
    with pytest.raises(ConfigError) as exc:
        load_curate_config(str(path), ["select.score=ifd"])
    problems = exc.value.problems
    assert "unknown section 'curat'; did you mean 'curate'?" in problems
    assert "unknown key 'curate.qualty'; did you mean 'curate.quality'?" in problems
    assert any(p.startswith("curate.near.threshold:") for p in problems)
    assert len(problems) == 3
    with pytest.raises(ConfigError, match="set curate.select.target"):
        load_curate_config(None, ["select.score=ifd"])


def test_every_config_field_has_help_text():
    from pydantic import BaseModel

    def walk(cls):
        for name, info in cls.model_fields.items():
            assert info.description, f"{cls.__name__}.{name} has no description"
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
                walk(info.annotation)

    walk(CurateConfig)


def test_documented_config_is_the_default():
    from pathlib import Path

    import yaml

    doc = (Path(__file__).parents[2] / "docs" / "curation.md").read_text()
    block = doc.split("```yaml\n")[1].split("```")[0]
    assert CurateConfig.model_validate(yaml.safe_load(block)["curate"]) == CurateConfig()


@pytest.mark.parametrize("sizes, budget, expected", [
    ([5, 5], 9, [4, 5]),
    ([1, 10, 10], 20, [1, 9, 10]),
    ([3, 100, 100, 100], 12, [3, 3, 3, 3]),
    ([2, 2], 10, [2, 2]),
])
def test_water_fill(sizes, budget, expected):
    assert water_fill(sizes, budget) == expected


def test_select_balances_clusters_and_explains_each_choice():
    rng = np.random.default_rng(0)
    centers = np.eye(3, dtype=np.float32)
    labels = np.repeat([0, 1, 2], [30, 10, 5])
    vectors = centers[labels] + 0.01 * rng.standard_normal((45, 3)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = np.where(labels == 0, 10.0, 1.0) + np.arange(45) * 1e-3  # cluster 0 has all the best scores
    chosen = select(scores, scores, target=9, vectors=vectors, num_clusters=3, seed=0, score_name="heuristic")
    assert sorted(np.bincount(labels[chosen.kept], minlength=3).tolist()) == [3, 3, 3]
    assert sorted(chosen.quotas) == [3, 3, 3]
    best_of_cluster_1 = max(np.nonzero(labels == 1)[0], key=lambda i: scores[i])
    assert best_of_cluster_1 in chosen.kept
    assert chosen.why[best_of_cluster_1].startswith("kept: heuristic ") and "rank 1 in cluster" in chosen.why[best_of_cluster_1]
    assert all(chosen.why[i].startswith("not selected") for i in range(45) if i not in chosen.kept)
    plain = select(scores, scores, target=9)
    assert plain.kept == sorted(np.argsort(-scores)[:9].tolist())
    again = select(scores, scores, target=9, vectors=vectors, num_clusters=3, seed=0)
    assert again.kept == chosen.kept


def test_ifd_batched_equals_one_at_a_time(tokenizer):
    from sftkit.curate.score import ifd_scores, ifd_sequences
    from sftkit.data.chat_labels import IGNORE_INDEX
    from tests.helpers import make_tiny_model

    model = make_tiny_model(seed=3).eval()
    conversations = [
        [{"role": "user", "content": "Add 2 and 3."}, {"role": "assistant", "content": "2 plus 3 is 5."}],
        [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
         {"role": "assistant", "content": "Hello there, how can I help you today with your questions?"}],
    ]
    batched = ifd_scores(model, tokenizer, conversations, max_length=128, batch_tokens=64)

    def mean_loss(ids, labels):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1]
        target = torch.tensor(labels[1:])
        keep = target != IGNORE_INDEX
        return torch.nn.functional.cross_entropy(logits[keep], target[keep]).item()

    for i, conv in enumerate(conversations):
        ids, labels, uncond, uncond_labels = ifd_sequences(tokenizer, conv, 128)
        reply = [t for t, lab in zip(ids, labels) if lab != IGNORE_INDEX]
        assert [t for t, lab in zip(uncond, uncond_labels) if lab != IGNORE_INDEX] == reply
        assert len(uncond) < len(ids)
        expected = mean_loss(ids, labels) / mean_loss(uncond, uncond_labels)
        assert batched["ifd"][i] == pytest.approx(expected, rel=1e-4)
    assert batched["rows_per_second"] > 0


def test_curate_with_target_and_ifd_on_a_tiny_model(tmp_path, tiny_model_dir):
    from sftkit.curate import curate

    rows = [{"id": i, "messages": [{"role": "user", "content": f"Question number {i}: what is {i} plus {i}?"},
                                   {"role": "assistant", "content": f"The sum of {i} and {i} is {2 * i}."}]}
            for i in range(12)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_curate_config(None, [f"model={tiny_model_dir}", "select.target=5", "select.score=ifd",
                                    "select.embedding=hashed", "select.num_clusters=2", "workers=1"])
    report = curate([str(data)], tmp_path / "out.jsonl", cfg)
    kept = [json.loads(line) for line in open(tmp_path / "out.jsonl")]
    rejects = [json.loads(line) for line in open(tmp_path / "out.rejects.jsonl")]
    assert len(kept) == 5 and len(rejects) == 7
    assert all(e["reason"] == "not_selected" and "ifd " in e["details"]["not_selected"] for e in rejects)
    select_stage = report["stages"][-1]
    assert select_stage["clusters"] == 2 and sum(select_stage["quotas"]) == 5 and select_stage["embedding"] == "hashed"
    assert len(report["kept"]) == 5 and all(k["why"].startswith("kept: ifd ") for k in report["kept"])


@pytest.mark.integration
def test_ifd_with_the_default_model_ranks_a_mismatched_pair_last():
    from sftkit.curate.score import ifd_scores
    from sftkit.models import load_model, load_tokenizer

    conversations = [
        [{"role": "user", "content": "Translate 'good morning' into French."},
         {"role": "assistant", "content": "Bonjour."}],
        [{"role": "user", "content": "What is the capital of Italy?"},
         {"role": "assistant", "content": "The capital of Italy is Rome."}],
        [{"role": "user", "content": "What is the capital of Italy?"},
         {"role": "assistant", "content": "Photosynthesis turns light, water and carbon dioxide into sugar."}],
    ]
    scored = ifd_scores(load_model("default"), load_tokenizer("default"), conversations, max_length=256)
    ifd = scored["ifd"]
    assert np.isfinite(ifd).all() and (ifd > 0).all()
    assert ifd[1] < 0.7  # the instruction makes the right answer much easier
    assert ifd[2] > ifd[1] + 0.2  # a mismatched reply gains little from its instruction


def test_command_line_options_override_the_file(tmp_path):
    from sftkit.cli.curate import build_config

    path = tmp_path / "c.yaml"
    path.write_text("curate:\n  pii: keep\n  decontam:\n    eval: [a.jsonl]\n")
    cfg = build_config(str(path), ["near.threshold=0.9"], ["b.jsonl,bigbench:x", "a.jsonl"], target=7, pii="mask",
                       score=None, semantic=True)
    assert cfg.decontam.eval == ["a.jsonl", "b.jsonl", "bigbench:x"]
    assert (cfg.pii.action, cfg.select.target, cfg.semantic.enabled, cfg.near.threshold) == ("mask", 7, True, 0.9)
