"""bench/serve_load.py against a real server on 127.0.0.1: every request is accounted for by status, and a
round sends nothing after its deadline, so a load run always ends."""

from __future__ import annotations

import asyncio
import time

import httpx

from bench.serve_load import one_round, table
from tests.serve.helpers import make_server, running

PROMPTS = ["Say one word.", "Name a colour."]


def test_a_round_answers_every_request_and_stops_at_its_deadline(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("SFTKIT_API_KEYS", raising=False)
    server = make_server(tiny_model_dir, tmp_path, spec=str(tiny_model_dir), api_keys_file=None, batch_size=4)
    with running(server) as url:
        (model,) = [m["id"] for m in httpx.get(f"{url}/models").json()["data"]]
        row = asyncio.run(one_round(url, model, PROMPTS, 6, 3, 2))
        assert (row["requests"], row["not_sent"], row["statuses"]) == (6, 0, {"200": 6})
        assert row["latency_p50_seconds"] <= row["latency_p95_seconds"] <= row["wall_seconds"]
        late = asyncio.run(one_round(url, model, PROMPTS, 50, 4, 2, deadline=time.monotonic()))
        assert (late["requests"], late["not_sent"], late["latency_p50_seconds"]) == (0, 50, None)
    late.update(batch_size=4, mean_batch_rows=0.0)
    assert table([late], type("Args", (), {"requests": 50, "max_tokens": 2, "model": model})).splitlines()[-1] == \
        "| 4 | 4 |  | 0.00 | 0.0 | - | - | 0.0 |"
