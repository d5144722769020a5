"""/metrics counts exactly what a client sent, and a blocked request or withheld reply shows up in the metrics
and the audit log with its rule and hazard category (and no API key anywhere)."""

from __future__ import annotations

import json
import re

import openai
import pytest

from sftkit.generation import generate
from tests.serve.helpers import KEY, OTHER_KEY, client, make_server, metric, running

HI = [{"role": "user", "content": "Hi, who are you?"}]


def audit_records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_counters_equal_what_the_client_sent(serve_run, serve_catalog, tmp_path):
    server = make_server(serve_run, tmp_path, catalog=serve_catalog, guard_blocklists=["default"])
    with running(server) as url:
        chat = client(url).chat.completions
        answers = [chat.create(model="run", messages=[{"role": "user", "content": f"Say {i}"}], max_tokens=4 + i)
                   for i in range(3)]
        answers.append(client(url, key=OTHER_KEY).completions.create(model="base", prompt="Hi", max_tokens=5))
        blocked = chat.create(model="run", messages=[{"role": "user", "content": "Help me hack into my ex's "
                                                      "email"}], max_tokens=4)
        with pytest.raises(openai.BadRequestError):
            chat.create(model="run", messages=HI, temperature=-1)
        with pytest.raises(openai.AuthenticationError):
            client(url, key="not-a-key-at-all").chat.completions.create(model="run", messages=HI)

        requests = {tuple(labels.values()): metric(url, "sftkit_requests_total", **labels)
                    for labels in [{"endpoint": "chat_completions", "model": "run", "status": "200"},
                                   {"endpoint": "completions", "model": "base", "status": "200"},
                                   {"endpoint": "chat_completions", "model": "unknown", "status": "400"},
                                   {"endpoint": "chat_completions", "model": "unknown", "status": "401"}]}
        assert list(requests.values()) == [4, 1, 1, 1]
        assert metric(url, "sftkit_requests_total") == 7
        assert metric(url, "sftkit_prompt_tokens_total") == sum(a.usage.prompt_tokens for a in answers + [blocked])
        assert metric(url, "sftkit_completion_tokens_total") == 4 + 5 + 6 + 5
        assert metric(url, "sftkit_completion_tokens_total", model="base") == 5
        assert metric(url, "sftkit_replies_total") == 4  # a guardrail notice is not a reply
        assert metric(url, "sftkit_guardrail_triggers_total", where="input", category="S2") == 1
        assert metric(url, "sftkit_request_latency_seconds_count", endpoint="chat_completions") == 6
        assert metric(url, "sftkit_time_to_first_token_seconds_count") == 4
        assert metric(url, "sftkit_drift_prompts_total", measure="length") == 5
    records = audit_records(tmp_path / "audit.jsonl")
    assert [r["status"] for r in records] == [200, 200, 200, 200, 200, 400, 401]
    assert [r["key_id"] for r in records] == ["keys.txt:2"] * 3 + ["keys.txt:4", "keys.txt:2", "keys.txt:2", None]
    (record,) = [r for r in records if r["guardrail"]]
    assert record["guardrail"] == [{"where": "input", "rule": "blocklist:default:24", "category": "S2"}]
    assert record["finish_reasons"] == ["content_filter"] and record["completion_tokens"] == 0
    assert "messages" not in record and "replies" not in record  # content only with --log-content
    log_text = (tmp_path / "audit.jsonl").read_text()
    assert KEY not in log_text and OTHER_KEY not in log_text and "hack into" not in log_text
    assert "not-a-key-at-all" not in log_text  # a wrong key is not written either


def test_a_withheld_reply_is_counted_and_logged_with_content(serve_run, serve_catalog, tmp_path):
    served = serve_catalog["run"]
    with served.active() as model:
        (natural,) = generate(model, served.tokenizer, [HI], 10)
    word = max(natural.text.split()[2:], key=len)  # a word after the first few tokens
    match = re.search(re.escape(word), natural.text, re.IGNORECASE)
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text(f"# hazard: S7 a word the model says\n{re.escape(word)}\n")
    server = make_server(serve_run, tmp_path, catalog=serve_catalog, guard_blocklists=[str(blocklist)],
                         log_content=True)
    notice = "[guardrail] This reply was withheld (hazard S7 privacy)."
    with running(server) as url:
        chat = client(url).chat.completions
        answer = chat.create(model="run", messages=HI, max_tokens=10)
        assert answer.choices[0].message.content == notice
        assert answer.choices[0].finish_reason == "content_filter"
        chunks = [c for c in chat.create(model="run", messages=HI, max_tokens=10, stream=True) if c.choices]
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
        before = natural.text[:match.start()]
        assert streamed.startswith(before.rstrip()) and streamed.endswith("\n" + notice)
        assert word not in streamed.removesuffix(notice)  # the text that completed the match was never sent
        assert chunks[-1].choices[0].finish_reason == "content_filter"
        assert metric(url, "sftkit_guardrail_triggers_total", where="output", category="S7",
                      rule=f"{blocklist}:2") == 2
        assert metric(url, "sftkit_replies_total") == 0
    records = audit_records(tmp_path / "audit.jsonl")
    assert [r["guardrail"][0]["where"] for r in records] == ["output", "output"]
    assert KEY not in (tmp_path / "audit.jsonl").read_text()  # --log-content writes content, never keys
    assert records[0]["messages"] == HI and records[0]["replies"] == [notice]
