"""Request checking: every accepted parameter, neutral values of unsupported ones, and a 400 naming the
parameter for anything else."""

from __future__ import annotations

import pytest

from sftkit.serve.schema import APIError, parse_request
from sftkit.serve.settings import ServeSettings

SETTINGS = ServeSettings(default_max_tokens=64, max_tokens_limit=128, max_choices=3)
HI = [{"role": "user", "content": "Hi"}]


def chat(**body):
    return parse_request("chat", {"model": "m", "messages": HI, **body}, SETTINGS)


def rejected(kind: str, body: dict) -> APIError:
    with pytest.raises(APIError) as err:
        parse_request(kind, body, SETTINGS)
    assert err.value.status == 400
    return err.value


def test_accepted_parameters_and_defaults():
    request = chat()
    assert (request.max_tokens, request.temperature, request.top_p, request.n, request.stop) == (64, 1.0, 1.0, 1, [])
    request = chat(max_completion_tokens=9, temperature=0, top_p=0.5, seed=3, stop="END", n=3, user="u-1",
                   stream=True, stream_options={"include_usage": True}, frequency_penalty=0, presence_penalty=0.0,
                   logprobs=False, response_format={"type": "text"})
    assert (request.max_tokens, request.temperature, request.top_p, request.seed, request.stop, request.n,
            request.user, request.stream, request.include_usage) == (9, 0.0, 0.5, 3, ["END"], 3, "u-1", True, True)
    assert chat(max_tokens=5, max_completion_tokens=5).max_tokens == 5
    messages = [{"role": "developer", "content": "Be brief."}, {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}]
    assert chat(messages=messages).conversation == [{"role": "system", "content": "Be brief."},
                                                    {"role": "assistant", "content": "Hello"},
                                                    {"role": "user", "content": "Hi there"}]
    completion = parse_request("completion", {"model": "m", "prompt": ["Once"]}, SETTINGS)
    assert completion.conversation == [{"role": "user", "content": "Once"}]


@pytest.mark.parametrize("body, param", [
    ({"temperature": 2.5}, "temperature"), ({"temperature": "hot"}, "temperature"), ({"top_p": 0}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"), ({"max_tokens": 129}, "max_tokens"), ({"max_tokens": True}, "max_tokens"),
    ({"max_tokens": 4, "max_completion_tokens": 5}, "max_tokens"), ({"n": 4}, "n"), ({"seed": 1.5}, "seed"),
    ({"stop": ""}, "stop"), ({"stop": ["a", 1]}, "stop"), ({"logprobs": True}, "logprobs"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"), ({"frequency_penalty": False}, "frequency_penalty"),
    ({"tools": [{"type": "function"}]}, "tools"), ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"stream_options": {"include_usage": True}}, "stream_options"), ({"functions": []}, "functions"),
    ({"model": ""}, "model"), ({"messages": []}, "messages"), ({"messages": [{"role": "tool", "content": "x"}]},
                                                                "messages[0].role"),
    ({"messages": [{"role": "user", "content": "x", "name": "bob"}]}, "messages[0].name"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, "messages[0].content"),
    ({"messages": HI + [{"role": "assistant", "content": "x"}]}, "messages[1].role"),
])
def test_unsupported_or_bad_values_are_400s_naming_the_parameter(body, param):
    assert rejected("chat", {"model": "m", "messages": HI, **body}).param == param


def test_completion_specific_checks():
    assert rejected("completion", {"model": "m", "prompt": ["a", "b"]}).param == "prompt"
    assert rejected("completion", {"model": "m", "prompt": "a", "echo": True}).param == "echo"
    assert rejected("completion", {"model": "m", "messages": HI}).param == "messages"
    error = rejected("chat", ["not", "an", "object"])
    assert error.body() == {"error": {"message": "the request body must be a JSON object",
                                      "type": "invalid_request_error", "param": None, "code": "invalid_json"}}
