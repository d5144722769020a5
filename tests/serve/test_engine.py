"""Dynamic batching and the limits around it, on a real server: 32 concurrent clients answered in shared
batches, a full queue answers 429 with Retry-After, a client that disconnects mid-stream frees its place and
stops its generation, and a request over its time limit gets 504 and stops too."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import openai
import pytest

from tests.serve.helpers import KEY, client, make_server, metric, running

HI = [{"role": "user", "content": "Hi, who are you?"}]
LONG_TOKENS = 2000  # far more than a request lives in these tests (every reply runs to max_tokens)


def wait_until(condition, timeout_seconds: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_32_concurrent_clients_are_all_answered_in_shared_batches(serve_run, serve_catalog, tmp_path):
    server = make_server(serve_run, tmp_path, catalog=serve_catalog, batch_size=8)

    async def ask_all(url):
        async with openai.AsyncOpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=120) as aclient:
            return await asyncio.gather(*(aclient.chat.completions.create(
                model="run", messages=[{"role": "user", "content": f"Question number {i}?"}], max_tokens=8)
                for i in range(32)))

    with running(server) as url:
        answers = asyncio.run(ask_all(url))
        assert [a.usage.completion_tokens for a in answers] == [8] * 32
        assert all(a.choices[0].finish_reason == "length" and a.choices[0].message.content for a in answers)
        assert metric(url, "sftkit_requests_total", status="200") == 32
        assert metric(url, "sftkit_batch_rows_sum") == 32
        num_batches = metric(url, "sftkit_batch_rows_count")
        assert 32 / 8 <= num_batches < 32  # at most 8 rows a batch, and batches were shared


def test_a_disconnect_mid_stream_frees_the_place_and_stops_generation(serve_run, serve_catalog, tmp_path):
    server = make_server(serve_run, tmp_path, catalog=serve_catalog, max_queue=1)
    with running(server) as url:
        chat = client(url).chat.completions
        stream = chat.create(model="run", messages=HI, max_tokens=LONG_TOKENS, stream=True)
        chunks = iter(stream)
        next(chunks), next(chunks)  # the opening chunk, then the first text: generation is under way
        with pytest.raises(openai.RateLimitError) as err:  # the one place is taken
            chat.create(model="run", messages=HI, max_tokens=1)
        assert err.value.response.headers["retry-after"] == "1" and err.value.body["code"] == "queue_full"
        stream.close()
        wait_until(lambda: metric(url, "sftkit_requests_in_flight") == 0 and
                   metric(url, "sftkit_rows_generating") == 0)
        assert metric(url, "sftkit_rows_cancelled_total") == 1  # stopped, not run to 2000 tokens
        assert chat.create(model="run", messages=HI, max_tokens=2).usage.completion_tokens == 2
        assert metric(url, "sftkit_requests_total", status="499") == 1
        assert metric(url, "sftkit_requests_rejected_total", reason="queue_full") == 1
    statuses = [json.loads(line)["status"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert sorted(statuses) == [200, 429, 499]


def test_clients_that_leave_early_give_their_place_back(serve_run, serve_catalog, tmp_path):
    """Gone before the first chunk (the stream body never starts) or while waiting for a whole answer."""
    server = make_server(serve_run, tmp_path, catalog=serve_catalog, max_queue=1)
    with running(server) as url:
        host, port = url.removeprefix("http://").removesuffix("/v1").split(":")
        body = json.dumps({"model": "run", "messages": HI, "max_tokens": LONG_TOKENS, "stream": True}).encode()
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
        wait_until(lambda: metric(url, "sftkit_requests_total", status="499") == 1)
        wait_until(lambda: metric(url, "sftkit_requests_in_flight") == 0)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/chat/completions", json={"model": "run", "messages": HI, "max_tokens": LONG_TOKENS},
                       headers={"Authorization": f"Bearer {KEY}"}, timeout=0.5)
        wait_until(lambda: metric(url, "sftkit_requests_total", status="499") == 2)
        wait_until(lambda: metric(url, "sftkit_requests_in_flight") == 0 and
                   metric(url, "sftkit_rows_generating") == 0)
        assert chat_tokens(url, 2) == 2  # the place is free again


def chat_tokens(url: str, max_tokens: int) -> int:
    return client(url).chat.completions.create(model="run", messages=HI, max_tokens=max_tokens).usage.completion_tokens


def test_a_request_over_its_time_limit_gets_504_and_stops(serve_run, serve_catalog, tmp_path):
    server = make_server(serve_run, tmp_path, catalog=serve_catalog, request_timeout_seconds=0.5)
    with running(server) as url:
        chat = client(url).chat.completions
        with pytest.raises(openai.InternalServerError) as err:
            chat.create(model="run", messages=HI, max_tokens=LONG_TOKENS)
        assert err.value.status_code == 504 and err.value.body["code"] == "timeout"
        with pytest.raises(openai.APIError, match="longer than 0.5 s"):
            list(chat.create(model="run", messages=HI, max_tokens=LONG_TOKENS, stream=True))
        wait_until(lambda: metric(url, "sftkit_rows_generating") == 0)
        assert metric(url, "sftkit_rows_cancelled_total") == 2
        assert metric(url, "sftkit_requests_total", status="504") == 2
