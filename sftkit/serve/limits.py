"""What one request may cost: body size (413), prompt length (400), admission to a bounded queue (429 with
Retry-After), a deadline (504), and the watch for a client that went away (which frees its place at once)."""

from __future__ import annotations

import asyncio
import json
import time

from sftkit.serve.schema import APIError


class Admission:
    """At most `capacity` requests in flight (waiting or generating). Used from the event loop thread only."""

    def __init__(self, capacity: int, retry_after_seconds: int):
        self.capacity, self.retry_after_seconds = capacity, retry_after_seconds
        self.in_flight = 0

    def admit(self) -> Ticket:
        if self.in_flight >= self.capacity:
            raise APIError(429, f"the server is busy ({self.capacity} requests in flight): retry after "
                           f"{self.retry_after_seconds} s", None, "queue_full",
                           {"Retry-After": str(self.retry_after_seconds)})
        self.in_flight += 1
        return Ticket(self)


class Ticket:
    """A request's place; `release` gives it back (once, however often it is called)."""

    def __init__(self, admission: Admission):
        self.admission, self.released = admission, False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.admission.in_flight -= 1


async def read_json(request, max_bytes: int) -> object:
    """The request body parsed as JSON: 413 when it is larger than `max_bytes` (checked as it arrives, so a
    huge body is never held whole), 400 when it is not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(int(declared), max_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(size, max_bytes)
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"the request body is not valid JSON ({exc})", None, "invalid_json") from None


def too_large(size: int, max_bytes: int) -> APIError:
    return APIError(413, f"the request body has {size}+ bytes; the limit is {max_bytes}", None, "request_too_large")


def check_prompt_length(num_prompt_tokens: int, max_tokens: int, max_prompt_tokens: int, context_tokens: int) -> None:
    """400 `context_length_exceeded` when the prompt is over the limit or prompt + reply exceed the model."""
    if num_prompt_tokens > max_prompt_tokens:
        raise APIError(400, f"the prompt has {num_prompt_tokens} tokens; this server takes at most "
                       f"{max_prompt_tokens}", "messages", "context_length_exceeded")
    if num_prompt_tokens + max_tokens > context_tokens:
        raise APIError(400, f"the prompt ({num_prompt_tokens} tokens) plus max_tokens ({max_tokens}) exceed the "
                       f"model's context of {context_tokens} tokens: lower max_tokens", "max_tokens",
                       "context_length_exceeded")


class ClientGone(Exception):
    """The client closed the connection before its answer was ready (recorded with status 499)."""

    status = 499


class Deadline:
    """A request's time limit, started when it arrives."""

    def __init__(self, seconds: float):
        self.seconds, self.at = seconds, time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def error(self) -> APIError:
        return APIError(504, f"the request took longer than {self.seconds:g} s and was stopped", None, "timeout")


async def until_disconnected(request) -> None:
    """Returns when the client closes the connection (the body has been read, so only that can arrive)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def first_of(awaitable, request, deadline: Deadline):
    """`awaitable`'s result; ClientGone when the client disconnects first, and the deadline's APIError(504)
    when time runs out first. The losers are cancelled."""
    task = asyncio.ensure_future(awaitable)
    watch = asyncio.ensure_future(until_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watch}, timeout=deadline.left(), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if task in done:
        return task.result()
    task.cancel()
    if watch in done:
        raise ClientGone()
    raise deadline.error()
