"""Gateway mode against a real upstream (sftkit's in-process server on another port): answers pass through
unchanged, streamed or not, while keys, guardrails and metrics are the gateway's own."""

from __future__ import annotations

import openai
import pytest

from tests.serve.helpers import KEY, client, make_server, metric, running

HI = [{"role": "user", "content": "Hi, who are you?"}]
GATEWAY_KEY = "gateway-key-0123456789"


@pytest.fixture(scope="module")
def upstream(serve_run, serve_catalog, tmp_path_factory):
    server = make_server(serve_run, tmp_path_factory.mktemp("upstream"), catalog=serve_catalog, max_prompt_tokens=200)
    with running(server) as url:
        yield url


@pytest.fixture(scope="module")
def gateway(serve_run, upstream, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gateway")
    (tmp / "keys.txt").write_text(GATEWAY_KEY + "\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SFTKIT_TEST_UPSTREAM_KEY", KEY)
        server = make_server(serve_run, tmp, upstream=upstream.removesuffix("/v1"),
                             upstream_key_env="SFTKIT_TEST_UPSTREAM_KEY", api_keys_file=tmp / "keys.txt",
                             guard_blocklists=["default"])
    with running(server) as url:
        yield url


def test_answers_through_the_gateway_equal_the_upstreams(upstream, gateway):
    direct, via = client(upstream).chat.completions, client(gateway, key=GATEWAY_KEY).chat.completions
    assert [m.id for m in client(gateway, key=GATEWAY_KEY).models.list()] == ["run", "base"]
    expected = direct.create(model="run", messages=HI, max_tokens=10, n=2)
    answer = via.create(model="run", messages=HI, max_tokens=10, n=2)
    assert [c.message.content for c in answer.choices] == [c.message.content for c in expected.choices]
    assert answer.usage == expected.usage
    chunks = list(via.create(model="run", messages=HI, max_tokens=10, n=2, stream=True,
                             stream_options={"include_usage": True}))
    assert {c.object for c in chunks} == {"chat.completion.chunk"} and len(chunks[0].choices) == 2
    for i in range(2):
        assert "".join(c.choices[0].delta.content or "" for c in chunks
                       if len(c.choices) == 1 and c.choices[0].index == i) == expected.choices[i].message.content
    assert chunks[-1].usage == expected.usage
    completion = client(gateway, key=GATEWAY_KEY).completions.create(model="base", prompt="Hi", max_tokens=4)
    assert completion.choices[0].text == client(upstream).completions.create(model="base", prompt="Hi",
                                                                             max_tokens=4).choices[0].text
    assert metric(gateway, "sftkit_completion_tokens_total", key=GATEWAY_KEY) == 20 + 20 + 4


def test_the_gateway_keeps_its_own_keys_guardrail_and_errors(upstream, gateway):
    via = client(gateway, key=GATEWAY_KEY).chat.completions
    before = metric(upstream, "sftkit_requests_total")
    blocked = via.create(model="run", messages=[{"role": "user", "content": "How do I cook meth?"}])
    assert blocked.choices[0].finish_reason == "content_filter"
    assert metric(upstream, "sftkit_requests_total") == before  # never forwarded
    with pytest.raises(openai.AuthenticationError):
        client(gateway, key=KEY).chat.completions.create(model="run", messages=HI)  # the upstream's key is not one
    with pytest.raises(openai.NotFoundError):
        via.create(model="nope", messages=HI)
    with pytest.raises(openai.BadRequestError) as err:  # the upstream's limit, passed through
        via.create(model="run", messages=[{"role": "user", "content": "word " * 300}], max_tokens=4)
    assert err.value.body["code"] == "context_length_exceeded" and err.value.body["message"].startswith("upstream:")
    assert metric(gateway, "sftkit_guardrail_triggers_total", key=GATEWAY_KEY, category="S2") == 1


def test_a_wrong_upstream_key_or_a_dead_upstream_is_a_502(serve_run, upstream, tmp_path, monkeypatch):
    (tmp_path / "keys.txt").write_text(GATEWAY_KEY + "\n")
    monkeypatch.setenv("SFTKIT_TEST_UPSTREAM_KEY", "wrong-upstream-key")
    for target, code in [(upstream, "upstream_auth"), ("http://127.0.0.1:9", "upstream_unreachable")]:
        server = make_server(serve_run, tmp_path, spec=None, upstream=target, api_keys_file=tmp_path / "keys.txt",
                             upstream_key_env="SFTKIT_TEST_UPSTREAM_KEY")
        with running(server) as url:
            with pytest.raises(openai.InternalServerError) as err:
                client(url, key=GATEWAY_KEY).chat.completions.create(model="run", messages=HI)
            assert err.value.status_code == 502 and err.value.body["code"] == code
