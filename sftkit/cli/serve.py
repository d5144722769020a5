"""`sftkit serve` (an OpenAI-compatible server or gateway) and `sftkit monitor` (an audit log's rates and
alerts)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from sftkit.cli import root
from sftkit.cli.root import app
from sftkit.errors import UserError

_SERVE_PACKAGES = ("fastapi", "uvicorn", "prometheus_client", "httpx")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _option(help_text: str, *names: str):
    return typer.Option(*names, help=help_text)


@app.command("serve")
def serve_cmd(
    model: Annotated[Optional[str], typer.Argument(help="run directory, model directory, hub id or `default`; "
                     "with --upstream optional (gives the tokenizer and the training data for drift)")] = None,
    adapter: Annotated[Optional[list[str]], _option("PEFT adapter served as NAME (NAME=DIR; a LoRA run "
                       "directory works; repeatable); the base is then served as `base`", "--adapter")] = None,
    host: Annotated[Optional[str], _option("address to bind (default 127.0.0.1; others need API keys)")] = None,
    port: Annotated[Optional[int], _option("port (default 8000; 0 = a free one)")] = None,
    api_keys: Annotated[Optional[Path], _option("file of API keys, one per line", "--api-keys")] = None,
    api_keys_env: Annotated[Optional[str], _option("environment variable with API keys (default "
                            "SFTKIT_API_KEYS)")] = None,
    guard_blocklist: Annotated[Optional[list[str]], _option("guardrail blocklist; `default` = the shipped one, "
                               "tagged with hazard categories (repeatable)", "--guard-blocklist")] = None,
    guard_classifier: Annotated[Optional[str], _option("guardrail classifier package.module:function")] = None,
    upstream: Annotated[Optional[str], _option("gateway mode: URL of an OpenAI-compatible server, e.g. "
                        "http://gpu-node:8000/v1")] = None,
    upstream_key_env: Annotated[Optional[str], _option("environment variable with the upstream's API key")] = None,
    upstream_timeout: Annotated[Optional[float], _option("read timeout for the upstream, s (default 600)")] = None,
    batch_size: Annotated[Optional[int], _option("most replies generated together (1 = no batching; "
                          "default 8)")] = None,
    max_queue: Annotated[Optional[int], _option("most requests in flight before 429 (default 64)")] = None,
    retry_after_seconds: Annotated[Optional[int], _option("the Retry-After of a 429 (default 1)")] = None,
    request_timeout: Annotated[Optional[float], _option("seconds before a request is stopped with 504 "
                               "(default 120)")] = None,
    max_body_bytes: Annotated[Optional[int], _option("largest request body; larger get 413 (default 1000000)")] = None,
    max_prompt_tokens: Annotated[Optional[int], _option("longest prompt in tokens (default 4096)")] = None,
    default_max_tokens: Annotated[Optional[int], _option("reply limit when a request sets none (default 256)")] = None,
    max_tokens_limit: Annotated[Optional[int], _option("largest max_tokens a request may ask for "
                                "(default 2048)")] = None,
    max_choices: Annotated[Optional[int], _option("largest n (default 8)")] = None,
    default_temperature: Annotated[Optional[float], _option("temperature when a request sets none (default 1.0, "
                                   "as OpenAI)")] = None,
    audit_log: Annotated[Optional[Path], _option("audit log file (default RUN/serve/audit.jsonl)",
                         "--audit-log")] = None,
    audit_max_bytes: Annotated[Optional[int], _option("rotate the audit log at this size (default 10000000)")] = None,
    audit_backups: Annotated[Optional[int], _option("rotated audit logs kept (default 5)")] = None,
    log_content: Annotated[bool, _option("also write prompts and replies to the audit log",
                           "--log-content")] = False,
    drift_embedding: Annotated[Optional[str], _option("drift by nearest training prompt: auto, minilm, hashed or "
                               "none (default auto)")] = None,
    device: Annotated[Optional[str], _option("auto, cpu or cuda[:N] (default auto)")] = None,
    dtype: Annotated[Optional[str], _option("auto, fp32, bf16 or fp16 (default auto)")] = None,
    num_threads: Annotated[Optional[int], _option("CPU threads for torch (default: all cores)")] = None,
):
    """Serve a run or model with an OpenAI-compatible API (or front another server with --upstream): API keys,
    limits, guardrails, Prometheus /metrics and a JSONL audit log."""
    missing = [name for name in _SERVE_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"`sftkit serve` needs {', '.join(missing)}: pip install 'sftkit[serve]'")
    from sftkit.serve.server import bound_socket, build_server, uvicorn_server
    from sftkit.serve.settings import settings_from

    settings = settings_from({
        "host": host, "port": port, "api_keys_file": api_keys, "api_keys_env": api_keys_env,
        "guard_blocklists": guard_blocklist, "guard_classifier": guard_classifier, "upstream": upstream,
        "upstream_key_env": upstream_key_env, "upstream_timeout_seconds": upstream_timeout,
        "batch_size": batch_size, "max_queue": max_queue, "retry_after_seconds": retry_after_seconds,
        "request_timeout_seconds": request_timeout, "max_body_bytes": max_body_bytes,
        "max_prompt_tokens": max_prompt_tokens, "default_max_tokens": default_max_tokens,
        "max_tokens_limit": max_tokens_limit, "max_choices": max_choices, "default_temperature": default_temperature,
        "audit_log": audit_log, "audit_max_bytes": audit_max_bytes, "audit_backups": audit_backups,
        "log_content": log_content or None, "drift_embedding": drift_embedding, "device": device, "dtype": dtype,
        "num_threads": num_threads})
    server = build_server(model, adapter, settings)
    sock = bound_socket(settings.host, settings.port)
    url_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{url_host}:{sock.getsockname()[1]}/v1"
    backend = f"gateway to {server.backend.base}" if settings.upstream else \
        "models " + ", ".join(getattr(server.backend, "catalog", {}))
    root.console.print(f"serving {url} ({backend}); {len(server.keys)} API key(s)"
                       f"{'' if len(server.keys) else ' - open, loopback only'}; guardrail "
                       f"{'on' if server.guard else 'off'}; drift {'on' if server.drift else 'off'}; audit log "
                       f"{server.audit.path}; Ctrl-C to stop", soft_wrap=True)
    uvicorn_server(server.app()).run(sockets=[sock])


@app.command("monitor")
def monitor_cmd(
    log: Annotated[Path, typer.Argument(help="audit log (audit.jsonl), or a run directory (its serve/audit.jsonl)",
                   readable=False)],
    run: Annotated[Optional[Path], _option("run whose summary.json holds the evaluated rates (default: LOG when "
               "it is a run directory)", "--run")] = None,
    window: Annotated[str, _option("window length: seconds, or 30m, 1h, 1d")] = "1h",
    factor: Annotated[float, _option("alert when a rate is surely above FACTOR x its baseline")] = 2.0,
    min_count: Annotated[int, _option("fewest requests (or replies) in a window for its rates to alert")] = 20,
    max_error_rate: Annotated[float, _option("alert when the 5xx rate is surely above this")] = 0.05,
    max_pii_rate: Annotated[float, _option("alert when the share of replies with PII is above this")] = 0.0,
    as_json: Annotated[bool, _option("print the summary as JSON", "--json")] = False,
    fail_on_alert: Annotated[bool, _option("exit with code 1 when an alert fired", "--fail-on-alert")] = False,
):
    """Summarise a `sftkit serve` audit log: rates per window and the alerts against the evaluated rates."""
    from sftkit.models import is_run_dir
    from sftkit.serve.monitor import Thresholds, print_monitor, summarize

    if is_run_dir(log):
        run, log = run or log, log / "serve" / "audit.jsonl"
    summary = summarize(log, run, _seconds(window), Thresholds(factor=factor, min_count=min_count,
                                                            max_error_rate=max_error_rate, max_pii_rate=max_pii_rate))
    if as_json:
        root.out.print_json(json.dumps(summary))
    else:
        print_monitor(summary, root.out)
    if fail_on_alert and summary["alerts"]:
        sys.exit(1)


def _seconds(window: str) -> float:
    match = _DURATION.match(window.strip())
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"--window {window!r}: use seconds or a number with s, m, h or d (e.g. 30m, 1h)")
    return float(match.group(1)) * _SECONDS[match.group(2)]
