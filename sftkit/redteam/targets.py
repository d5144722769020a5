"""What gets attacked: a local model or run (batched greedy generation through `sftkit.generation.generate`,
optionally behind a guardrail), or any OpenAI-compatible chat endpoint (`sftkit serve`, vLLM, Ollama,
llama.cpp), so the served system, its guardrails included, is what answers.

`converse` plays each attack's conversation: the first round for every conversation, then, for scripted
multi-turn attacks, the target's own reply and the next user turn appended, round after round, each round
batched. A reply the target's guardrail blocked (finish reason `content_filter`) counts as refused.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sftkit.errors import UserError
from sftkit.redteam.attacks import Conversation


@dataclass(frozen=True)
class TargetReply:
    text: str
    blocked: bool = False  # the target's guardrail blocked the request or withheld the reply


class LocalTarget:
    """A model name or run directory, generating greedily in batches; `guard` is a sftkit Guardrail or None."""

    supports_prefill = True

    def __init__(self, spec: str, max_new_tokens: int, batch_size: int = 16, dtype: str = "float32", guard=None):
        import torch

        from sftkit.models import load_for_inference

        dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if dtype not in dtypes:
            raise UserError(f"unknown dtype {dtype!r}: use float32, bfloat16 or float16")
        self.model, self.tokenizer, self.description = load_for_inference(spec, dtypes[dtype])
        if hasattr(self.model, "merge_and_unload"):  # an adapter run: same function, faster generation
            self.model = self.model.merge_and_unload()
        self.max_new_tokens, self.batch_size, self.guard = max_new_tokens, batch_size, guard

    def complete(self, conversations: list[list[dict]]) -> list[TargetReply]:
        from sftkit.generation import generate

        replies = generate(self.model, self.tokenizer, conversations, self.max_new_tokens,
                           batch_size=self.batch_size, guard=self.guard)
        return [TargetReply(r.text.strip(), r.finish_reason == "content_filter") for r in replies]


class EndpointTarget:
    """POST {url}/chat/completions, greedy (temperature 0), `concurrency` requests at a time. The API key is
    sent as a bearer token and never written anywhere."""

    supports_prefill = False

    def __init__(self, url: str, max_new_tokens: int, api_key: str | None = None, model: str | None = None,
                 concurrency: int = 4, timeout_s: float = 300.0):
        import httpx

        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise UserError(f"--endpoint {url!r}: give the base URL of an OpenAI-compatible API, e.g. "
                            "http://127.0.0.1:8000/v1")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(headers=headers, timeout=timeout_s)
        self.max_new_tokens, self.concurrency = max_new_tokens, max(1, concurrency)
        self.model = model or self._first_model()
        self.description = f"{self.url} ({self.model})"

    def _request(self, method: str, path: str, **kwargs) -> dict:
        import httpx

        try:
            response = self.client.request(method, self.url + path, **kwargs)
        except httpx.HTTPError as exc:
            raise UserError(f"cannot reach {self.url}{path} ({type(exc).__name__}: {exc}): is the server running? "
                            "Check --endpoint") from None
        if response.status_code >= 400:
            body = " ".join(response.text.split())[:200]
            hint = " (check --api-key)" if response.status_code in (401, 403) else ""
            raise UserError(f"{self.url}{path} answered HTTP {response.status_code}{hint}: {body}")
        try:
            return response.json()
        except ValueError:
            raise UserError(f"{self.url}{path} did not answer with JSON: is it an OpenAI-compatible API?") from None

    def _first_model(self) -> str:
        models = self._request("GET", "/models").get("data") or []
        if not models or not isinstance(models[0], dict) or "id" not in models[0]:
            raise UserError(f"{self.url}/models lists no model: pass --endpoint-model NAME")
        return str(models[0]["id"])

    def _one(self, messages: list[dict]) -> TargetReply:
        body = {"model": self.model, "messages": messages, "max_tokens": self.max_new_tokens, "temperature": 0}
        answer = self._request("POST", "/chat/completions", json=body)
        try:
            choice = answer["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise UserError(f"{self.url}/chat/completions answered without choices[0].message: is it an "
                            "OpenAI-compatible API?") from None
        return TargetReply(text.strip(), choice.get("finish_reason") == "content_filter")

    def complete(self, conversations: list[list[dict]]) -> list[TargetReply]:
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self._one, conversations))


def opening_messages(conversation: Conversation) -> list[dict]:
    """What the target is sent in the first round (the prefill as a final assistant turn)."""
    messages = list(conversation.messages)
    return messages + [{"role": "assistant", "content": conversation.prefill}] if conversation.prefill else messages


def converse(target, conversations: list[Conversation]) -> tuple[list[TargetReply], list[list[dict]]]:
    """(the scored reply of each conversation, the messages that reply answered), round by round."""
    if not target.supports_prefill and any(c.prefill for c in conversations):
        raise UserError("prefill needs a local model: an OpenAI-compatible endpoint cannot start the reply")
    contexts = [opening_messages(c) for c in conversations]
    replies = target.complete(contexts)
    for turn in range(max((len(c.followups) for c in conversations), default=0)):
        todo = [i for i, c in enumerate(conversations) if turn < len(c.followups)]
        for i in todo:
            contexts[i] = contexts[i] + [{"role": "assistant", "content": replies[i].text},
                                         {"role": "user", "content": conversations[i].followups[turn]}]
        for i, reply in zip(todo, target.complete([contexts[i] for i in todo])):
            replies[i] = reply
    return replies, contexts
