"""Load on `sftkit serve` over loopback: requests/s, tokens/s and p50/p95 latency at several client
concurrencies, with and without dynamic batching.

    flock /tmp/sftkit-heavy.lock .venv/bin/python bench/serve_load.py            # default model, 200 requests
    .venv/bin/python bench/serve_load.py --batch-sizes 1 16 --concurrency 1 4 16 --json /tmp/load.json

For each batch size a server process is started (`sftkit serve MODEL --batch-size B --port 0`, the default
guardrail and the audit log on, as in production), and for each concurrency C, C clients send REQUESTS
chat requests between them (greedy, `--max-tokens` each, prompts cycling through sftkit's benign safety
prompts). Every request is accounted for: answered (200) or refused with its status; none may be lost.
Bounded: each request has a client timeout and the whole run stops at --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sftkit.safety.prompts import load_prompts

STARTUP_TIMEOUT_SECONDS = 300
REQUEST_TIMEOUT_SECONDS = 600


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default", help="run or model directory, or `default`")
    p.add_argument("--requests", type=int, default=200, help="requests per (batch size, concurrency)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16], help="concurrent clients")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16], help="server --batch-size values")
    p.add_argument("--max-tokens", type=int, default=16, help="max_tokens of every request")
    p.add_argument("--max-seconds", type=float, default=3600,
                   help="send no request after this long (the requests under way still finish)")
    p.add_argument("--json", type=Path, help="also write the results here")
    return p.parse_args(argv)


def start_server(model: str, batch_size: int, workdir: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "SFTKIT_API_KEYS": ""}
    proc = subprocess.Popen([sys.executable, "-m", "sftkit.cli", "serve", model, "--port", "0", "--batch-size",
                             str(batch_size), "--guard-blocklist", "default", "--max-queue", "256",
                             "--audit-log", str(workdir / f"audit-b{batch_size}.jsonl")],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    deadline, line = time.monotonic() + STARTUP_TIMEOUT_SECONDS, ""
    while "serving" not in line:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the server did not start: {proc.stderr.read()}")
        line = proc.stderr.readline()
    return proc, re.search(r"serving (http://\S+/v1)", line).group(1)


async def one_round(url: str, model: str, prompts: list[str], num_requests: int, concurrency: int,
                    max_tokens: int, deadline: float = float("inf")) -> dict:
    """C clients send `num_requests` between them; none starts a request after `deadline` (time.monotonic)."""
    import httpx

    results: list[tuple[int, float, int]] = []  # (status, latency s, completion tokens)
    todo = iter(range(num_requests))

    async def client(session: httpx.AsyncClient):
        for i in todo:
            if time.monotonic() > deadline:
                return
            body = {"model": model, "messages": [{"role": "user", "content": prompts[i % len(prompts)]}],
                    "max_tokens": max_tokens, "temperature": 0}
            started = time.perf_counter()
            try:
                response = await session.post(f"{url}/chat/completions", json=body)
                tokens = response.json()["usage"]["completion_tokens"] if response.status_code == 200 else 0
                results.append((response.status_code, time.perf_counter() - started, tokens))
            except httpx.HTTPError as exc:
                results.append((-1, time.perf_counter() - started, 0))
                print(f"request {i}: {type(exc).__name__}", file=sys.stderr)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_SECONDS, limits=limits) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    latencies = np.array([latency for status, latency, _ in results if status == 200])
    statuses: dict[str, int] = {}
    for status, _, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {"concurrency": concurrency, "requests": len(results), "not_sent": num_requests - len(results),
            "statuses": statuses, "wall_seconds": wall,
            "requests_per_second": len(latencies) / wall,
            "tokens_per_second": sum(tokens for _, _, tokens in results) / wall,
            "latency_p50_seconds": float(np.percentile(latencies, 50)) if len(latencies) else None,
            "latency_p95_seconds": float(np.percentile(latencies, 95)) if len(latencies) else None}


def batch_stats(url: str) -> tuple[float, float]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    values = {s.name: s.value for f in text_string_to_metric_families(httpx.get(url[:-3] + "/metrics").text)
              for s in f.samples if s.name in ("sftkit_batch_rows_sum", "sftkit_batch_rows_count")}
    return values.get("sftkit_batch_rows_sum", 0.0), values.get("sftkit_batch_rows_count", 0.0)


def main(argv=None) -> None:
    args = parse_args(argv)
    prompts = [p.prompt for p in load_prompts("benign")]
    rows, started = [], time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for batch_size in args.batch_sizes:
            proc, url = start_server(args.model, batch_size, Path(tmp))
            try:
                name = asyncio.run(_first_model(url))
                asyncio.run(one_round(url, name, prompts, 2, 1, args.max_tokens))  # warm-up
                for concurrency in args.concurrency:
                    if time.monotonic() - started > args.max_seconds:
                        raise SystemExit(f"stopped after --max-seconds {args.max_seconds:g}")
                    rows_before, batches_before = batch_stats(url)
                    row = asyncio.run(one_round(url, name, prompts, args.requests, concurrency, args.max_tokens,
                                                started + args.max_seconds))
                    rows_after, batches_after = batch_stats(url)
                    row.update(batch_size=batch_size,
                               mean_batch_rows=(rows_after - rows_before) / max(batches_after - batches_before, 1))
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if row["not_sent"]:
                        print(table(rows, args))
                        raise SystemExit(f"stopped after --max-seconds {args.max_seconds:g}: {row['not_sent']} "
                                         "request(s) of the last row were not sent")
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    print(table(rows, args))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2))


async def _first_model(url: str) -> str:
    import httpx

    async with httpx.AsyncClient() as session:
        return (await session.get(f"{url}/models")).json()["data"][0]["id"]


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(rows: list[dict], args) -> str:
    lines = [f"{args.requests} requests per row, max_tokens {args.max_tokens}, model {args.model}", "",
             ("| batch size | clients | answered | requests/s | tokens/s | p50 latency s | p95 latency s "
             "| mean rows per batch |"),
             "|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        answered = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))
        lines.append(f"| {r['batch_size']} | {r['concurrency']} | {answered} | {r['requests_per_second']:.2f} | "
                     f"{r['tokens_per_second']:.1f} | {seconds(r['latency_p50_seconds'])} | "
                     f"{seconds(r['latency_p95_seconds'])} | {r['mean_batch_rows']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
