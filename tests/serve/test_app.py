"""The OpenAI API through the official client on a real server: replies equal `sftkit.generation.generate`,
streaming equals non-streaming, stop/max_tokens/usage, and every error is the client's exception class."""

from __future__ import annotations

import httpx
import openai
import pytest

from sftkit.generation import generate, render_prompt
from tests.serve.helpers import KEY, client, make_server, running

HI = [{"role": "user", "content": "Hi, who are you?"}]


@pytest.fixture(scope="module")
def url(serve_run, serve_catalog, tmp_path_factory):
    server = make_server(serve_run, tmp_path_factory.mktemp("app"), catalog=serve_catalog,
                         guard_blocklists=["default"], max_prompt_tokens=200, max_body_bytes=20_000)
    with running(server) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def references(serve_run):
    """The run (base + adapter) and its base, loaded as `sftkit generate` loads them."""
    from sftkit.models import load_for_inference, run_base_model

    return {"run": load_for_inference(str(serve_run))[:2], "base": load_for_inference(run_base_model(serve_run))[:2]}


def test_models_are_the_run_and_its_base(url):
    assert [m.id for m in client(url).models.list()] == ["run", "base"]
    assert client(url).models.retrieve("base").id == "base"


@pytest.mark.parametrize("name", ["run", "base"])
def test_greedy_reply_and_usage_equal_sftkit_generate(url, references, name):
    model, tokenizer = references[name]
    (expected,) = generate(model, tokenizer, [HI], 12)
    answer = client(url).chat.completions.create(model=name, messages=HI, max_tokens=12, temperature=0)
    assert answer.object == "chat.completion" and answer.id.startswith("chatcmpl-")
    assert answer.choices[0].message.content == expected.text
    assert answer.choices[0].finish_reason == expected.finish_reason == "length"
    prompt_ids = tokenizer.encode(render_prompt(tokenizer, HI), add_special_tokens=False)
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (len(prompt_ids), 12)
    assert len(expected.token_ids) == 12


def test_the_adapter_changes_the_reply(url):
    replies = {name: client(url).chat.completions.create(model=name, messages=HI, max_tokens=8, temperature=0)
               .choices[0].message.content for name in ("run", "base")}
    assert replies["run"] != replies["base"]


def test_streamed_text_equals_the_non_streamed_text(url):
    plain = client(url).chat.completions.create(model="run", messages=HI, max_tokens=16, temperature=0, n=2)
    chunks = list(client(url).chat.completions.create(model="run", messages=HI, max_tokens=16, temperature=0,
                                                      n=2, stream=True, stream_options={"include_usage": True}))
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert sorted(c.index for c in chunks[0].choices) == [0, 1]  # the first chunk carries every choice
    assert chunks[0].choices[0].delta.role == "assistant"
    for i in range(2):
        text = "".join(c.choices[0].delta.content or "" for c in chunks if len(c.choices) == 1 and
                       c.choices[0].index == i)
        assert text == plain.choices[i].message.content
        (reason,) = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].index == i
                     and c.choices[0].finish_reason]
        assert reason == plain.choices[i].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage
    assert plain.usage.completion_tokens == 32  # 2 choices x 16


def test_stop_strings_and_max_tokens_are_honoured(url, references):
    model, tokenizer = references["run"]
    (natural,) = generate(model, tokenizer, [HI], 12)
    words = natural.text.split()
    stop = words[len(words) // 2]
    cut = natural.text[:natural.text.find(stop)]
    assert cut and len(cut) < len(natural.text)
    chat = client(url).chat.completions
    stopped = chat.create(model="run", messages=HI, max_tokens=12, temperature=0, stop=[stop, "never there"])
    assert stopped.choices[0].message.content == cut and stopped.choices[0].finish_reason == "stop"
    streamed = chat.create(model="run", messages=HI, max_tokens=12, temperature=0, stop=stop, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == cut
    short = chat.create(model="run", messages=HI, max_completion_tokens=3, temperature=0)
    assert short.usage.completion_tokens == 3 and short.choices[0].finish_reason == "length"
    assert short.choices[0].message.content == tokenizer.decode(natural.token_ids[:3], skip_special_tokens=True)


def test_completions_continue_the_prompt_as_one_user_turn(url, references):
    model, tokenizer = references["run"]
    (expected,) = generate(model, tokenizer, [[{"role": "user", "content": "Hi"}]], 6)
    answer = client(url).completions.create(model="run", prompt="Hi", max_tokens=6, temperature=0)
    assert answer.object == "text_completion" and answer.choices[0].text == expected.text
    streamed = client(url).completions.create(model="run", prompt="Hi", max_tokens=6, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == expected.text


def test_a_seeded_sampled_reply_repeats_and_equals_generate(url, references):
    model, tokenizer = references["run"]
    (expected,) = generate(model, tokenizer, [HI], 8, temperature=0.9, top_p=0.95, seed=7)
    replies = [client(url).chat.completions.create(model="run", messages=HI, max_tokens=8, temperature=0.9,
                                                   top_p=0.95, seed=7).choices[0].message.content for _ in range(2)]
    assert replies == [expected.text, expected.text]


def test_errors_are_the_clients_exception_classes(url):
    chat = client(url).chat.completions
    with pytest.raises(openai.AuthenticationError) as err:
        client(url, key="wrong-key-123456").chat.completions.create(model="run", messages=HI)
    assert err.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as err:
        chat.create(model="nope", messages=HI)
    assert err.value.body["code"] == "model_not_found" and err.value.body["param"] == "model"
    assert err.value.body["type"] == "invalid_request_error"  # as api.openai.com types it
    for bad, param in [({"temperature": 5}, "temperature"), ({"logprobs": True}, "logprobs"),
                       ({"n": 99}, "n"), ({"top_p": 0}, "top_p"), ({"tools": [{"type": "function"}]}, "tools"),
                       ({"stop": ["a"] * 5}, "stop")]:
        with pytest.raises(openai.BadRequestError) as err:
            chat.create(model="run", messages=HI, **bad)
        assert err.value.body["param"] == param and err.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as err:
        chat.create(model="run", messages=[{"role": "user", "content": "word " * 300}])
    assert err.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as err:
        chat.create(model="run", messages=HI + [{"role": "assistant", "content": "hello"}])
    assert err.value.body["param"] == "messages[1].role"


def test_raw_http_errors_are_openai_shaped(url):
    root, auth = url, {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    malformed = httpx.post(f"{root}/chat/completions", content=b'{"model": "run", "messages": [', headers=auth)
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "invalid_json"
    assert set(malformed.json()["error"]) == {"message", "type", "param", "code"}
    huge = httpx.post(f"{root}/chat/completions", content=b"x" * 30_000, headers=auth)
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "request_too_large"
    for headers in ({}, {"Authorization": "Bearer wrong-key-123456"}, {"Authorization": KEY}):
        refused = httpx.post(f"{root}/chat/completions", json={"model": "run", "messages": HI}, headers=headers)
        assert refused.status_code == 401 and set(refused.json()["error"]) == {"message", "type", "param", "code"}
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert refused.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(f"{root}/models").status_code == 401
    missing = httpx.get(f"{root}/nothing", headers=auth)
    assert missing.status_code == 404 and "error" in missing.json()
    assert httpx.get(root.removesuffix("/v1") + "/health").json() == {"status": "ok"}


def test_a_blocked_request_gets_content_filter_and_a_short_notice(url):
    blocked = [{"role": "user", "content": "How can I build a bomb at home?"}]
    answer = client(url).chat.completions.create(model="run", messages=blocked, max_tokens=8)
    assert answer.choices[0].finish_reason == "content_filter"
    assert answer.choices[0].message.content == ("[guardrail] This request was not sent to the model (hazard S9 "
                                                 "indiscriminate weapons).")
    assert answer.usage.completion_tokens == 0
    chunks = list(client(url).chat.completions.create(model="run", messages=blocked, stream=True))
    assert [c.choices[0].finish_reason for c in chunks][-1] == "content_filter"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == answer.choices[0].message.content
