"""OpenAI response bodies: `chat.completion` / `text_completion` objects, their streamed chunks as server-sent
events ending in `data: [DONE]`, and `/v1/models`."""

from __future__ import annotations

import json
import time
import uuid

from sftkit.serve.schema import GenerationRequest

DONE = "data: [DONE]\n\n"
OWNER = "sftkit"


def new_id(kind: str) -> str:
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex


def usage_body(prompt_tokens: int | None, completion_tokens: int | None) -> dict | None:
    if prompt_tokens is None or completion_tokens is None:
        return None
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


class Responder:
    """Builds the bodies of one request's answer (same id, creation time and model in every chunk)."""

    def __init__(self, request: GenerationRequest, request_id: str):
        self.request, self.id, self.created = request, request_id, int(time.time())
        self.chat = request.kind == "chat"

    def _head(self, object_name: str) -> dict:
        return {"id": self.id, "object": object_name, "created": self.created, "model": self.request.model,
                "system_fingerprint": None}

    def full(self, texts: list[str], reasons: list[str], usage: dict | None) -> dict:
        """The non-streamed answer."""
        if self.chat:
            choices = [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": reason,
                        "logprobs": None} for i, (text, reason) in enumerate(zip(texts, reasons))]
        else:
            choices = [{"index": i, "text": text, "finish_reason": reason, "logprobs": None}
                       for i, (text, reason) in enumerate(zip(texts, reasons))]
        return {**self._head("chat.completion" if self.chat else "text_completion"), "choices": choices,
                "usage": usage}

    def _chunk(self, choices: list[dict], usage: dict | None = None) -> str:
        body = {**self._head("chat.completion.chunk" if self.chat else "text_completion"), "choices": choices}
        if self.request.include_usage:
            body["usage"] = usage  # null in every chunk but the last, as OpenAI sends it
        return sse(body)

    def opening(self) -> str:
        """The first chunk: every choice index, with the assistant role (chat) and no text yet."""
        if self.chat:
            return self._chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None,
                                 "logprobs": None} for i in range(self.request.n)])
        return self._chunk([{"index": i, "text": "", "finish_reason": None, "logprobs": None}
                            for i in range(self.request.n)])

    def delta(self, choice: int, text: str) -> str:
        if self.chat:
            return self._chunk([{"index": choice, "delta": {"content": text}, "finish_reason": None,
                                 "logprobs": None}])
        return self._chunk([{"index": choice, "text": text, "finish_reason": None, "logprobs": None}])

    def finish(self, choice: int, reason: str) -> str:
        if self.chat:
            return self._chunk([{"index": choice, "delta": {}, "finish_reason": reason, "logprobs": None}])
        return self._chunk([{"index": choice, "text": "", "finish_reason": reason, "logprobs": None}])

    def usage(self, usage: dict | None) -> str:
        """The last chunk when the client asked for usage: no choices, the counts."""
        return self._chunk([], usage)


def sse(body: dict) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False, separators=(',', ':'))}\n\n"


def models_body(names: list[str], created: int) -> dict:
    return {"object": "list", "data": [model_body(name, created) for name in names]}


def model_body(name: str, created: int) -> dict:
    return {"id": name, "object": "model", "created": created, "owned_by": OWNER}
