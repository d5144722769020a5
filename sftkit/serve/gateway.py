"""Gateway mode: the same front end (keys, limits, guardrails, metrics, audit) in front of any
OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp's server, another `sftkit serve`).

The checked request body is forwarded as the client sent it (a streamed one also asks for usage, so tokens
are counted); the upstream's answer comes back as the same events the in-process backend gives, and the
front end writes the response. Upstream errors keep their status and message when they are the client's
(4xx); an unreachable or failing upstream, or one that rejects the gateway's own key, is a 502.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx

from sftkit.generation import render_prompt
from sftkit.serve.limits import Deadline, check_prompt_length
from sftkit.serve.schema import APIError, Delta, Event, Finish, GenerationRequest, Usage

MODELS_CACHE_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 10.0


def api_base(url: str) -> str:
    """`http://host:8000` or `http://host:8000/v1` -> `http://host:8000/v1`."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class GatewayBackend:
    """Forwards to `upstream`. `tokenizer` (optional: the model's own) enables the prompt-length limit."""

    def __init__(self, upstream: str, api_key: str | None, timeout_seconds: float, tokenizer=None,
                 context_tokens: int | None = None):
        self.base = api_base(upstream)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(base_url=self.base, headers=headers, timeout=httpx.Timeout(
            timeout_seconds, connect=CONNECT_TIMEOUT_SECONDS))
        self.tokenizer, self.context_tokens = tokenizer, context_tokens
        self._models: list[str] = []
        self._models_at = float("-inf")

    async def model_names(self) -> list[str]:
        """The upstream's models (asked at most every MODELS_CACHE_SECONDS)."""
        if time.monotonic() - self._models_at > MODELS_CACHE_SECONDS:
            try:
                response = await self.client.get("/models")
            except httpx.HTTPError as exc:
                raise _unreachable(self.base, exc) from None
            if response.status_code != 200:
                raise _upstream_error(response.status_code, response.text)
            self._models = [m["id"] for m in response.json().get("data", [])]
            self._models_at = time.monotonic()
        return self._models

    async def check(self, request: GenerationRequest, max_prompt_tokens: int) -> int | None:
        """404 for a model the upstream does not serve; the prompt's length when a tokenizer was given."""
        names = await self.model_names()
        if request.model not in names:
            raise APIError(404, f"the model {request.model!r} does not exist upstream: it has {', '.join(names)}",
                           "model", "model_not_found")
        if self.tokenizer is None:
            return None
        num_tokens = len(self.tokenizer.encode(render_prompt(self.tokenizer, request.conversation),
                                               add_special_tokens=False))
        check_prompt_length(num_tokens, request.max_tokens, max_prompt_tokens, self.context_tokens or 10**9)
        return num_tokens

    def stop_choice(self, request_id: str, choice: int) -> None:
        """The upstream cannot stop one choice; the front end drops the rest of its text."""

    async def events(self, request: GenerationRequest, request_id: str, deadline: Deadline) -> AsyncIterator[Event]:
        path = "/chat/completions" if request.kind == "chat" else "/completions"
        body = dict(request.body)
        timeout = httpx.Timeout(max(deadline.left(), 0.001), connect=CONNECT_TIMEOUT_SECONDS)
        try:
            if not request.stream:
                response = await self.client.post(path, json=body, timeout=timeout)
                if response.status_code != 200:
                    raise _upstream_error(response.status_code, response.text, response.headers)
                for event in _answer_events(response.json(), request.kind):
                    yield event
                return
            body["stream_options"] = {"include_usage": True}
            async with self.client.stream("POST", path, json=body, timeout=timeout) as response:
                if response.status_code != 200:
                    raise _upstream_error(response.status_code, (await response.aread()).decode(errors="replace"),
                                          response.headers)
                usage = Usage(None, None)
                async for line in response.aiter_lines():
                    if deadline.left() <= 0:
                        raise deadline.error()
                    if not line.startswith("data:"):
                        continue
                    data = line[len("data:"):].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if chunk.get("error"):
                        raise _upstream_error(502, json.dumps(chunk))
                    for event in _chunk_events(chunk, request.kind):
                        yield event
                    if chunk.get("usage"):
                        usage = Usage(chunk["usage"].get("prompt_tokens"), chunk["usage"].get("completion_tokens"))
                yield usage
        except httpx.TimeoutException:
            raise deadline.error() from None
        except httpx.HTTPError as exc:
            raise _unreachable(self.base, exc) from None

    async def close(self) -> None:
        await self.client.aclose()


def _answer_events(answer: dict, kind: str) -> list[Event]:
    events: list[Event] = []
    for choice in answer.get("choices", []):
        text = (choice.get("message") or {}).get("content") if kind == "chat" else choice.get("text")
        events += [Delta(choice["index"], text or ""), Finish(choice["index"], choice.get("finish_reason") or "stop")]
    usage = answer.get("usage") or {}
    return events + [Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))]


def _chunk_events(chunk: dict, kind: str) -> list[Event]:
    events: list[Event] = []
    for choice in chunk.get("choices", []):
        text = (choice.get("delta") or {}).get("content") if kind == "chat" else choice.get("text")
        if text:
            events.append(Delta(choice["index"], text))
        if choice.get("finish_reason"):
            events.append(Finish(choice["index"], choice["finish_reason"]))
    return events


def _upstream_error(status: int, text: str, headers=None) -> APIError:
    try:
        error = json.loads(text).get("error") or {}
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (json.JSONDecodeError, AttributeError):
        error, message = {}, text[:500]
    message = message or text[:500]
    if status == 401 or status == 403:
        return APIError(502, f"the upstream rejected the gateway's key ({status}): check --upstream-key-env", None,
                        "upstream_auth")
    if 400 <= status < 500:
        retry = {"Retry-After": headers["retry-after"]} if headers and "retry-after" in headers else None
        return APIError(status, f"upstream: {message}", error.get("param") if isinstance(error, dict) else None,
                        error.get("code") if isinstance(error, dict) else None, retry)
    return APIError(502, f"the upstream failed ({status}): {message}", None, "upstream_error")


def _unreachable(base: str, exc: Exception) -> APIError:
    return APIError(502, f"the upstream {base} is unreachable ({type(exc).__name__}: {exc})", None,
                    "upstream_unreachable")
