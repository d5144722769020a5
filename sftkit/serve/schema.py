"""OpenAI request bodies -> a checked `GenerationRequest`; the events a backend answers it with (`Delta`,
`Finish`, `Usage`); and the OpenAI-shaped error every refusal is.

Only what sftkit can honour is accepted; any other parameter (or an unsupported value of an accepted one) is
a 400 naming it, never silently ignored. A few parameters are accepted at their neutral value only
(`frequency_penalty: 0`, `logprobs: false`, ...), since a client sending the default asks for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from sftkit.serve.settings import ServeSettings

Kind = Literal["chat", "completion"]
_COMMON = {"model", "max_tokens", "temperature", "top_p", "seed", "stop", "n", "user", "stream", "stream_options"}
ACCEPTED = {"chat": _COMMON | {"messages", "max_completion_tokens"}, "completion": _COMMON | {"prompt"}}
NEUTRAL = {"frequency_penalty": (0, 0.0), "presence_penalty": (0, 0.0), "logprobs": (False, None),
           "echo": (False,), "best_of": (1,), "suffix": (None,), "logit_bias": (None, {}), "tools": (None, []),
           "parallel_tool_calls": (None, False), "response_format": (None, {"type": "text"})}
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_STOP_STRINGS = 4


class APIError(Exception):
    """An error answered as `{"error": {"message", "type", "param", "code"}}` with HTTP `status`."""

    # as api.openai.com types them: a wrong key and an unknown model are invalid requests too
    TYPES: ClassVar[dict[int, str]] = {
        400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
        413: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 502: "upstream_error",
        503: "server_error", 504: "timeout_error"}

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.TYPES.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}


@dataclass
class GenerationRequest:
    """A checked request. `conversation` is what generation continues (for completions: the prompt as one
    user turn); `body` is the client's JSON as sent (gateway mode forwards it)."""

    kind: Kind
    model: str
    conversation: list[dict]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    user: str | None = None
    body: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Delta:
    """New text of one choice."""

    choice: int
    text: str


@dataclass(frozen=True)
class Finish:
    """A choice is complete."""

    choice: int
    reason: str


@dataclass(frozen=True)
class Usage:
    """Token counts of the whole answer (None when an upstream did not report them)."""

    prompt_tokens: int | None
    completion_tokens: int | None


Event = Delta | Finish | Usage


def bad(message: str, param: str | None, code: str | None = None) -> APIError:
    return APIError(400, message, param, code or "invalid_value")


def parse_request(kind: Kind, body: object, settings: ServeSettings) -> GenerationRequest:
    """The checked request, or APIError(400) for the first problem (naming the parameter)."""
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object", None, "invalid_json")
    for name, value in body.items():
        if name in ACCEPTED[kind]:
            continue
        if name in NEUTRAL and any(type(value) is type(v) and value == v for v in NEUTRAL[name]):
            continue
        raise bad(f"unsupported parameter {name!r}" + (f" (only {NEUTRAL[name][0]!r} is supported)" if name in NEUTRAL
                                                       else ""), name, "unsupported_parameter")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("`model` is required: a name from GET /v1/models", "model", "missing_required_parameter")
    conversation = _messages(body) if kind == "chat" else _prompt(body)
    stream = _typed(body, "stream", bool, False)
    options = _typed(body, "stream_options", dict, None)
    if options is not None:
        if not stream:
            raise bad("`stream_options` needs `stream: true`", "stream_options")
        if set(options) - {"include_usage"} or not isinstance(options.get("include_usage", False), bool):
            raise bad("`stream_options` supports only {\"include_usage\": true|false}", "stream_options")
    return GenerationRequest(
        kind=kind, model=model, conversation=conversation, max_tokens=_max_tokens(body, settings),
        temperature=_number(body, "temperature", settings.default_temperature, 0.0, 2.0, low_open=False),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0, low_open=True), seed=_typed(body, "seed", int, None),
        stop=_stop(body), n=_int(body, "n", 1, 1, settings.max_choices), stream=stream,
        include_usage=bool((options or {}).get("include_usage", False)), user=_typed(body, "user", str, None),
        body=body)


def _typed(body: dict, name: str, kind: type, default):
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise bad(f"`{name}` must be {'an integer' if kind is int else 'a ' + kind.__name__}, not {value!r}", name)
    return value


def _int(body: dict, name: str, default: int, low: int, high: int) -> int:
    value = _typed(body, name, int, default)
    if not low <= value <= high:
        raise bad(f"`{name}` {value} is outside [{low}, {high}]", name)
    return value


def _number(body: dict, name: str, default: float, low: float, high: float, low_open: bool) -> float:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise bad(f"`{name}` must be a number, not {value!r}", name)
    if value > high or value < low or (low_open and value == low):
        raise bad(f"`{name}` {value} is outside {'(' if low_open else '['}{low}, {high}]", name)
    return float(value)


def _max_tokens(body: dict, settings: ServeSettings) -> int:
    given = {k: body[k] for k in ("max_tokens", "max_completion_tokens") if body.get(k) is not None}
    if len(given) == 2 and given["max_tokens"] != given["max_completion_tokens"]:
        raise bad("`max_tokens` and `max_completion_tokens` differ: send one of them", "max_tokens")
    if not given:
        return settings.default_max_tokens
    name = next(iter(given))
    return _int(body, name, settings.default_max_tokens, 1, settings.max_tokens_limit)


def _stop(body: dict) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > MAX_STOP_STRINGS:
        raise bad(f"`stop` must be a non-empty string or a list of at most {MAX_STOP_STRINGS}", "stop")
    return stop


def _messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("`messages` must be a non-empty list", "messages", "missing_required_parameter")
    out = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad(f"{where} must be an object with `role` and `content`", where)
        extra = set(message) - {"role", "content"}
        if extra:
            raise bad(f"{where}: unsupported field {min(extra)!r}", f"{where}.{min(extra)}",
                      "unsupported_parameter")
        role = message.get("role")
        if role not in ROLES:
            raise bad(f"{where}: role {role!r} is not supported: use system, developer, user or assistant",
                      f"{where}.role")
        out.append({"role": ROLES[role], "content": _content(message.get("content"), f"{where}.content")})
    if out[-1]["role"] != "user":
        raise bad("the last message must be from the user (the model answers it)", f"messages[{len(out) - 1}].role")
    return out


def _content(content, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content and all(isinstance(p, dict) for p in content):
        if all(p.get("type") == "text" and isinstance(p.get("text"), str) and set(p) <= {"type", "text"}
               for p in content):
            return "".join(p["text"] for p in content)
        raise bad(f"{where}: only text parts ({{\"type\": \"text\", \"text\": ...}}) are supported", where)
    raise bad(f"{where} must be a string or a list of text parts", where)


def _prompt(body: dict) -> list[dict]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if isinstance(prompt, list):
        raise bad("`prompt` lists of several prompts are not supported: send one request per prompt", "prompt")
    if not isinstance(prompt, str) or not prompt:
        raise bad("`prompt` must be a non-empty string", "prompt", "missing_required_parameter")
    return [{"role": "user", "content": prompt}]
