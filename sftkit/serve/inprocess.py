"""The in-process backend: requests -> `Engine` jobs -> events (text deltas as tokens arrive, then each
choice's finish reason and the token counts).

Streamed text is decoded from the tokens so far and held back while it could still be the start of a stop
string (or ends in half a UTF-8 character), so the concatenated deltas are exactly the non-streamed reply.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from sftkit.generation import Reply, render_prompt
from sftkit.serve.catalog import ServedModel
from sftkit.serve.engine import END, Engine, Job
from sftkit.serve.limits import Deadline, check_prompt_length
from sftkit.serve.schema import APIError, Delta, Event, Finish, GenerationRequest, Usage

log = logging.getLogger("sftkit.serve")


class ChoiceText:
    """The text of one streamed choice: `push` a token, get the text that may be sent now."""

    def __init__(self, tokenizer, stop: list[str]):
        self.tokenizer, self.stop = tokenizer, stop
        self.ids: list[int] = []
        self.sent = ""
        self.stopped = False  # a stop string was reached: nothing more is sent

    def push(self, token_id: int) -> str:
        if self.stopped:
            return ""
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        cuts = [text.find(s) for s in self.stop if s in text]
        if cuts:
            text, self.stopped = text[:min(cuts)], True
        else:
            text = text[:len(text) - self._held(text)]
        if not text.startswith(self.sent):  # decoding revised earlier text: wait for the final reply
            return ""
        delta, self.sent = text[len(self.sent):], text
        return delta

    def _held(self, text: str) -> int:
        """How many trailing characters to hold back: a partial character, or a possible stop-string start."""
        if text.endswith("\ufffd"):
            return 1
        return max((k for s in self.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)

    def rest(self, final: str) -> str:
        """What the final reply adds to the text sent so far."""
        if final.startswith(self.sent):
            return final[len(self.sent):]
        log.warning("a streamed reply's text was revised after it was sent; the rest is not sent")
        return ""


class InProcessBackend:
    """Serves the models of a catalog through one engine."""

    def __init__(self, catalog: dict[str, ServedModel], engine: Engine):
        self.catalog, self.engine = catalog, engine
        self._jobs: dict[str, Job] = {}  # by request id, while generating

    async def model_names(self) -> list[str]:
        return list(self.catalog)

    def served(self, name: str) -> ServedModel:
        if name not in self.catalog:
            raise APIError(404, f"the model {name!r} does not exist: this server has {', '.join(self.catalog)}",
                           "model", "model_not_found")
        return self.catalog[name]

    async def check(self, request: GenerationRequest, max_prompt_tokens: int) -> int:
        """The prompt's length in tokens (chat template included); 404 for an unknown model, 400 when too long."""
        served = self.served(request.model)
        tokenizer = served.front_tokenizer
        prompt = render_prompt(tokenizer, request.conversation)
        num_tokens = len(tokenizer.encode(prompt, add_special_tokens=False))
        check_prompt_length(num_tokens, request.max_tokens, max_prompt_tokens, served.context_tokens)
        return num_tokens

    def stop_choice(self, request_id: str, choice: int) -> None:
        """Stop generating one choice (a guardrail cut it off)."""
        job = self._jobs.get(request_id)
        if job is not None:
            job.stopped_choices.add(choice)

    async def events(self, request: GenerationRequest, request_id: str, deadline: Deadline) -> AsyncIterator[Event]:
        served = self.served(request.model)
        job = Job(request.model, request.conversation, request.max_tokens, asyncio.get_running_loop(),
                  temperature=request.temperature, top_p=request.top_p, seed=request.seed, stop=request.stop,
                  n=request.n)
        texts = [ChoiceText(served.front_tokenizer, request.stop) for _ in range(request.n)]
        self._jobs[request_id] = job
        self.engine.submit(job)
        try:
            while True:
                try:
                    item = await asyncio.wait_for(job.tokens.get(), deadline.left())
                except TimeoutError:
                    raise deadline.error() from None
                if item is END:
                    break
                choice, token_id = item
                delta = texts[choice].push(token_id)
                if delta:
                    yield Delta(choice, delta)
            replies: list[Reply] = job.future.result()
            for choice, reply in enumerate(replies):
                rest = texts[choice].rest(reply.text)
                if rest:
                    yield Delta(choice, rest)
                yield Finish(choice, _reason(reply))
            yield Usage(replies[0].num_prompt_tokens, sum(len(r.token_ids) for r in replies))
        finally:
            self._jobs.pop(request_id, None)
            if not job.future.done():
                self.engine.cancel(job)

    async def close(self) -> None:
        self.engine.close()


def _reason(reply: Reply) -> str:
    """OpenAI's finish reason; only a guardrail cutting a choice off mid-stream cancels a row whose request
    is still answered."""
    if reply.finish_reason == "cancelled":
        return "content_filter"
    return reply.finish_reason
