"""One generation request from arrival to audit record: key, body, parameters, model and prompt checks, the
input guardrail, drift, admission, the backend's events screened by the output guardrail, and the response
(JSON, or server-sent events). Every request, answered or refused, ends in the metrics and the audit log.

A blocked request is answered without generation: each choice is the guardrail's notice with finish_reason
`content_filter`. A reply is screened as it grows: a streamed one sends only text that passed, and when a
rule fires the choice ends with the notice and `content_filter` (generation of it stops); a non-streamed one
is replaced by the notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from starlette.responses import JSONResponse, Response, StreamingResponse

from sftkit.safety.classifier import is_refusal
from sftkit.safety.hazards import hazard_name
from sftkit.serve.limits import ClientGone, Deadline, first_of, read_json
from sftkit.serve.responses import DONE, Responder, new_id, sse, usage_body
from sftkit.serve.schema import (
    APIError,
    Delta,
    Finish,
    GenerationRequest,
    Usage,
    parse_request,
)

log = logging.getLogger("sftkit.serve")
CONTENT_FILTER = "content_filter"


def notice(where: str, category: str | None) -> str:
    """The short text a blocked request or withheld reply gets (the rule itself stays in the audit log)."""
    what = "request was not sent to the model" if where == "input" else "reply was withheld"
    return f"[guardrail] This {what}" + (f" (hazard {hazard_name(category)})." if category else ".")


class Exchange:
    """The state of one request; `server` holds the shared parts (see sftkit.serve.server.Server)."""

    def __init__(self, server, endpoint: str, kind: str):
        self.server, self.endpoint, self.kind = server, endpoint, kind
        self.key_id: str | None = None
        self.id = new_id(kind)
        self.started = time.monotonic()
        self.deadline = Deadline(server.settings.request_timeout_seconds)
        self.request: GenerationRequest | None = None
        self.model_label = "unknown"  # the request's model once it is known to exist (bounded label values)
        self.status, self.error = 200, None
        self.prompt_tokens = self.completion_tokens = None
        self.texts: list[str] = []
        self.reasons: list[str | None] = []
        self.blocked: list[bool] = []
        self.verdicts: list[dict] = []
        self.drift = None
        self.first_text_at = None
        self.ticket = None
        self.stream_finished = self.ended = False

    async def handle(self, http_request) -> Response:
        streaming = False
        try:
            self.key_id = self.server.authenticate(http_request)
            self.request = request = parse_request(self.kind, await read_json(
                http_request, self.server.settings.max_body_bytes), self.server.settings)
            self.prompt_tokens = await self.server.backend.check(request, self.server.settings.max_prompt_tokens)
            self.model_label = request.model
            self.texts, self.reasons, self.blocked = [""] * request.n, [None] * request.n, [False] * request.n
            await self._screen_input(request)
            if all(self.blocked):
                return self._blocked_answer()
            self.ticket = self.server.admission.admit()
            if request.stream:
                streaming = True
                return _Stream(self, self._stream())
            try:
                await first_of(self._collect(), http_request, self.deadline)
            finally:
                self.ticket.release()
            return JSONResponse(self._full(), headers={"X-Request-Id": self.id})
        except APIError as exc:
            return self.fail(exc)
        except ClientGone:
            self.status = ClientGone.status
            return Response(status_code=ClientGone.status)
        except Exception as exc:  # a bug or a failed generation: the client gets a 500, the log the traceback
            log.exception("request %s failed", self.id)
            return self.fail(APIError(500, f"internal error ({type(exc).__name__}); request id {self.id}"))
        finally:
            if not streaming:
                self.record()

    def fail(self, exc: APIError) -> JSONResponse:
        self.status, self.error = exc.status, exc.code or exc.message
        if exc.status in (413, 429):
            self.server.metrics.rejected.labels(exc.code or str(exc.status)).inc()
        return JSONResponse(exc.body(), status_code=exc.status, headers={**exc.headers, "X-Request-Id": self.id})

    async def _screen_input(self, request: GenerationRequest) -> None:
        server = self.server
        if server.drift is not None:
            self.drift = await asyncio.to_thread(server.drift.score, request.conversation[-1]["content"])
        if server.guard is None:
            return
        verdict = server.guard.check_request(request.conversation)
        if verdict.blocked:
            self._verdict("input", verdict)
            self.texts = [notice("input", verdict.category)] * request.n
            self.reasons, self.blocked = [CONTENT_FILTER] * request.n, [True] * request.n
            self.completion_tokens = 0

    def _verdict(self, where: str, verdict, choice: int | None = None) -> None:
        self.verdicts.append({"where": where, "rule": verdict.source, "category": verdict.category,
                              **({"choice": choice} if choice is not None else {})})
        self.server.metrics.guardrail_trigger(where, verdict.source, verdict.category)

    async def _events(self):
        """The backend's events with the output guardrail applied; a cut-off choice ends with its notice."""
        backend = self.server.backend
        async with contextlib.aclosing(backend.events(self.request, self.id, self.deadline)) as events:
            async for event in events:
                for screened in self._screen(event):
                    yield screened

    def _screen(self, event) -> list:
        """What the client gets for one backend event (also recorded on the exchange)."""
        if isinstance(event, Usage):
            self.prompt_tokens = event.prompt_tokens if event.prompt_tokens is not None else self.prompt_tokens
            self.completion_tokens = event.completion_tokens
            return []
        if self.blocked[event.choice]:
            return []
        if isinstance(event, Finish):
            self.reasons[event.choice] = event.reason
            return [event]
        if self.first_text_at is None:
            self.first_text_at = time.monotonic()
        guard, choice = self.server.guard, event.choice
        verdict = guard.check(self.texts[choice] + event.text) if guard is not None else None
        if verdict is None or not verdict.blocked:
            self.texts[choice] += event.text
            return [event]
        self._verdict("output", verdict, choice)
        self.blocked[choice] = True
        self.server.backend.stop_choice(self.id, choice)
        text = notice("output", verdict.category)
        sent = ("\n" if self.texts[choice] else "") + text
        self.texts[choice], self.reasons[choice] = text, CONTENT_FILTER
        return [Delta(choice, sent), Finish(choice, CONTENT_FILTER)]

    async def _collect(self) -> None:
        async with contextlib.aclosing(self._events()) as events:
            async for _ in events:
                pass

    def _full(self) -> dict:
        return Responder(self.request, self.id).full(self.texts, self.reasons,
                                                     usage_body(self.prompt_tokens, self.completion_tokens))

    def _blocked_answer(self) -> Response:
        if not self.request.stream:
            return JSONResponse(self._full(), headers={"X-Request-Id": self.id})

        async def chunks():
            responder = Responder(self.request, self.id)
            yield responder.opening()
            for choice, text in enumerate(self.texts):
                yield responder.delta(choice, text)
                yield responder.finish(choice, CONTENT_FILTER)
            if self.request.include_usage:
                yield responder.usage(usage_body(self.prompt_tokens, 0))
            yield DONE
        return StreamingResponse(chunks(), media_type="text/event-stream", headers={"X-Request-Id": self.id})

    async def _stream(self):
        """The chunks; `stream_finished` once the last was handed over (else the client left first)."""
        responder = Responder(self.request, self.id)
        try:
            yield responder.opening()
            async with contextlib.aclosing(self._events()) as events:
                async for event in events:
                    yield responder.delta(event.choice, event.text) if isinstance(event, Delta) else \
                        responder.finish(event.choice, event.reason)
            if self.request.include_usage:
                yield responder.usage(usage_body(self.prompt_tokens, self.completion_tokens))
            yield DONE
        except APIError as exc:
            self.status, self.error = exc.status, exc.code or exc.message
            yield sse(exc.body())
        except Exception as exc:
            log.exception("request %s failed while streaming", self.id)
            self.status, self.error = 500, type(exc).__name__
            yield sse(APIError(500, f"internal error ({type(exc).__name__}); request id {self.id}").body())
        self.stream_finished = True

    def end_stream(self) -> None:
        """Give the place back and record the request, once, however the stream ended."""
        if self.ended:
            return
        self.ended = True
        if not self.stream_finished and self.status == 200:
            self.status = ClientGone.status
        self.ticket.release()
        self.record()

    def findings(self) -> list[dict]:
        """Per reply the model gave (not a guardrail notice) of an answered request: refusal and PII kinds."""
        if self.status != 200:
            return []
        pii = self.server.pii
        return [{"choice": i, "refused": is_refusal(text), "pii": sorted({kind for kind, *_ in pii.find(text)})}
                for i, (text, blocked) in enumerate(zip(self.texts, self.blocked)) if not blocked]

    def record(self) -> None:
        """Metrics and the audit record of this request."""
        findings = self.findings()
        self.server.metrics.observe(self, findings)
        if self.server.audit is not None:
            self.server.audit.write(self.audit_record(findings))

    def audit_record(self, findings: list[dict]) -> dict:
        request = self.request
        record = {
            "request_id": self.id, "key_id": self.key_id, "endpoint": self.endpoint, "model": self.model_label,
            "status": self.status, "error": self.error, "stream": bool(request and request.stream),
            "latency_s": round(time.monotonic() - self.started, 4),
            "time_to_first_text_s": round(self.first_text_at - self.started, 4) if self.first_text_at else None,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "n": request.n if request else None, "finish_reasons": self.reasons, "guardrail": self.verdicts,
            "refused": [f["refused"] for f in findings], "pii": [f["pii"] for f in findings],
            "drift": self.drift.record() if self.drift is not None else None,
            "user": request.user if request else None,
        }
        if request is not None:
            record.update(messages=request.conversation, replies=self.texts)  # kept only with --log-content
        return record


class _Stream(StreamingResponse):
    """A streamed answer that ends its exchange when the response ends, also when the client went away before
    the first chunk (the body generator then never ran, so its own cleanup could not)."""

    def __init__(self, exchange: Exchange, chunks):
        super().__init__(chunks, media_type="text/event-stream", headers={"X-Request-Id": exchange.id})
        self.exchange = exchange

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()  # a stream cut off mid-way stops generating now, not at GC
            self.exchange.end_stream()
