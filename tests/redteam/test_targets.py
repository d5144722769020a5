"""Targets: the endpoint target against a real local OpenAI-compatible server gives the local model's replies;
multi-turn attacks are played round by round; a guardrail's block counts as refused; the API key goes out as
a bearer token and is written nowhere.

The server is tests/redteam/openai_stub.py; when `sftkit serve` lands, `served` below should start it instead."""

from __future__ import annotations

import json
import re

import pytest

from sftkit.errors import UserError
from sftkit.redteam import RedteamSettings, run_redteam
from sftkit.redteam.attacks import ATTACKS, Conversation
from sftkit.redteam.scoring import refused_verdicts
from sftkit.redteam.seeds import load_seeds
from sftkit.redteam.targets import EndpointTarget, LocalTarget, TargetReply, converse
from sftkit.safety.classifier import RuleRefusalClassifier
from sftkit.safety.guardrails import Guardrail, Pattern
from tests.redteam.openai_stub import serve as served

SEEDS = load_seeds("shipped", 5, seed=0)
KEY = "sk-test-not-a-real-key-123"


@pytest.fixture(scope="module")
def local(tiny_model_dir):
    return LocalTarget(str(tiny_model_dir), max_new_tokens=5, batch_size=1)


def test_endpoint_replies_equal_the_local_model_round_by_round(local):
    conversations = [ATTACKS[name].build(seed, SEEDS) for name in ("direct", "system_persona", "fabricated_turn",
                                                                   "escalation") for seed in SEEDS[:2]]
    with served(local.model, local.tokenizer) as (url, seen):
        endpoint = EndpointTarget(url, max_new_tokens=5, api_key=KEY)
        assert endpoint.model == "stub-model"  # the first of GET /models
        remote, remote_contexts = converse(endpoint, conversations)
    here, here_contexts = converse(local, conversations)
    assert [r.text for r in remote] == [r.text for r in here] and remote_contexts == here_contexts
    assert not any(r.blocked for r in remote)
    # 1 GET /models + 8 first rounds + 2 escalations x 2 follow-ups
    assert seen == [f"Bearer {KEY}"] * 13


class Scripted:
    """A target that answers with the number of its call and records what it was sent."""

    supports_prefill = False

    def __init__(self):
        self.sent = []

    def complete(self, conversations):
        self.sent.append(conversations)
        return [TargetReply(f"reply {len(self.sent)}.{i}") for i in range(len(conversations))]


def test_multi_turn_conversations_continue_with_the_targets_own_replies():
    target = Scripted()
    single = Conversation(({"role": "user", "content": "one"},))
    multi = Conversation(({"role": "user", "content": "a"},), followups=("b", "c"))
    replies, contexts = converse(target, [single, multi])
    assert [len(batch) for batch in target.sent] == [2, 1, 1]
    assert [r.text for r in replies] == ["reply 1.0", "reply 3.0"]
    assert contexts[1] == [{"role": "user", "content": "a"}, {"role": "assistant", "content": "reply 1.1"},
                           {"role": "user", "content": "b"}, {"role": "assistant", "content": "reply 2.0"},
                           {"role": "user", "content": "c"}]
    with pytest.raises(UserError, match="prefill needs a local model"):
        converse(target, [Conversation(single.messages, prefill="Sure")])


def test_a_guardrail_block_through_the_endpoint_counts_as_refused(local):
    guard = Guardrail([Pattern(re.compile(r"bomb", re.IGNORECASE), "test:1")])
    bomb = next(s for s in load_seeds("shipped") if "bomb" in s.prompt)
    with served(local.model, local.tokenizer, guard=guard) as (url, _):
        replies, _ = converse(EndpointTarget(url, 5), [ATTACKS["direct"].build(s, SEEDS) for s in (bomb, SEEDS[1])])
    assert [r.blocked for r in replies] == [True, False] and replies[0].text.startswith("[guardrail]")
    assert refused_verdicts(RuleRefusalClassifier(), [bomb.prompt, SEEDS[1].prompt], replies)[0] is True


def test_endpoint_errors_are_one_line(local):
    with pytest.raises(UserError, match="cannot reach http://127.0.0.1:9/v1/models"):
        EndpointTarget("http://127.0.0.1:9/v1", 5)
    with pytest.raises(UserError, match="give the base URL"):
        EndpointTarget("127.0.0.1:8000", 5)
    with served(local.model, local.tokenizer) as (url, _):
        target = EndpointTarget(url, 5, model="other")
        with pytest.raises(UserError, match="HTTP 404"):
            target.complete([[{"role": "user", "content": "hi"}]])


def test_redteam_through_an_endpoint_writes_no_key(tmp_path, local):
    settings = RedteamSettings(max_seeds=3, attacks=["direct", "rot13"], max_new_tokens=3, engaged=False,
                               save_replies=True)
    with served(local.model, local.tokenizer) as (url, _):
        result = run_redteam(None, endpoint=url, api_key=KEY, output_dir=tmp_path, settings=settings)
    assert result["target"] == "endpoint" and result["model"] == f"{url} (stub-model)"
    assert "refusal_margin" not in result["attacks"]["direct"]  # no log-probabilities from an endpoint
    for name in ("redteam.json", "predictions.jsonl"):
        assert KEY not in (tmp_path / name).read_text()
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [(r["attack"], r["id"]) for r in rows] == [(a, s.id) for a in ("direct", "rot13")
                                                      for s in load_seeds("shipped", 3)]


def test_a_prefill_is_continued_by_the_local_model(local):
    from sftkit.generation import render_prompt
    from sftkit.redteam.attacks import PREFILL
    from sftkit.redteam.targets import opening_messages

    conversation = ATTACKS["prefill"].build(SEEDS[0], SEEDS)
    messages = opening_messages(conversation)
    assert messages[-1] == {"role": "assistant", "content": PREFILL}
    # the reply starts right after the prefill, inside the assistant turn (no end-of-turn token between)
    assert render_prompt(local.tokenizer, messages) == render_prompt(local.tokenizer, messages[:-1]) + PREFILL
    assert local.complete([messages])[0] == converse(local, [conversation])[0][0]
