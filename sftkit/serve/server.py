"""Put a server together from its settings (keys, guardrail, backend, drift reference, audit log) and run it
under uvicorn. Checks that need no model (keys, the bind address, guardrail files) come first."""

from __future__ import annotations

import socket
from pathlib import Path

from sftkit.curate.pii import PLACEHOLDERS, PIIDetector
from sftkit.errors import UserError
from sftkit.serve.audit import AuditLog
from sftkit.serve.auth import KeyRing
from sftkit.serve.limits import Admission
from sftkit.serve.metrics import Metrics
from sftkit.serve.schema import APIError
from sftkit.serve.settings import ServeSettings, is_loopback


class Server:
    """The parts every request uses. `backend` is an InProcessBackend or a GatewayBackend."""

    def __init__(self, settings: ServeSettings, backend, keys: KeyRing, guard=None, drift=None,
                 audit: AuditLog | None = None):
        self.settings, self.backend, self.keys = settings, backend, keys
        self.guard, self.drift, self.audit = guard, drift, audit
        self.metrics = Metrics()
        self.admission = Admission(settings.max_queue, settings.retry_after_seconds)
        self.pii = PIIDetector(list(PLACEHOLDERS))
        self.metrics.bind(self.admission, getattr(backend, "engine", None))

    def authenticate(self, request) -> str | None:
        """The id of the request's key (None on a server without keys); APIError(401) for a wrong one."""
        if not len(self.keys):
            return None
        key_id = self.keys.identify(request.headers.get("authorization"))
        if key_id is None:
            raise APIError(401, "a valid API key is required: send `Authorization: Bearer KEY`", None,
                           "invalid_api_key")
        return key_id

    def start(self) -> None:
        engine = getattr(self.backend, "engine", None)
        if engine is not None:
            engine.start()

    async def close(self) -> None:
        await self.backend.close()
        if self.audit is not None:
            self.audit.close()

    def app(self):
        from sftkit.serve.app import create_app

        return create_app(self)


def check_bind(settings: ServeSettings, keys: KeyRing) -> None:
    if not len(keys) and not is_loopback(settings.host):
        raise UserError(f"--host {settings.host} is reachable from other machines, and this server has no API "
                        f"keys: pass --api-keys FILE or set ${settings.api_keys_env}, or bind 127.0.0.1")


def default_audit_path(spec: str | None) -> Path:
    from sftkit.models import is_run_dir
    from sftkit.paths import cache_dir

    if spec and is_run_dir(spec):
        return Path(spec) / "serve" / "audit.jsonl"
    return cache_dir("serve") / "audit.jsonl"


def bound_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), so the address is known before uvicorn starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}): choose another --port or --host") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_server(app):
    """A uvicorn server for `app`; `.run(sockets=[bound_socket(...)])` serves until `.should_exit` is set."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
                            lifespan="on")
    return uvicorn.Server(config)


def build_server(spec: str | None, adapter_specs: list[str] | None, settings: ServeSettings) -> Server:
    """The server `sftkit serve` runs: `spec` (run directory, model directory, hub id or `default`) in-process,
    or `settings.upstream` behind the gateway (with `spec`, optional, giving the tokenizer and drift data)."""
    from sftkit.models import is_run_dir
    from sftkit.safety.guardrails import Guardrail
    from sftkit.serve.catalog import parse_adapters
    from sftkit.serve.drift import DriftReference

    keys = KeyRing.load(settings.api_keys_file, settings.api_keys_env)
    check_bind(settings, keys)
    guard = Guardrail.from_options(settings.guard_blocklists, settings.guard_classifier)
    adapters = parse_adapters(adapter_specs)
    audit = AuditLog(settings.audit_log or default_audit_path(spec), settings.audit_max_bytes,
                     settings.audit_backups, settings.log_content)  # its path is checked before a model loads
    if settings.upstream:
        backend, tokenizer = _gateway(spec, adapters, settings)
    elif spec is None:
        raise UserError("give the run directory or model to serve, or --upstream URL to put sftkit in front of "
                        "another server")
    else:
        backend, tokenizer = _in_process(spec, adapters, settings)
    drift = None
    if spec and tokenizer is not None and is_run_dir(spec):
        drift = DriftReference.for_run(spec, tokenizer, settings.drift_embedding)
    return Server(settings, backend, keys, guard, drift, audit)


def _in_process(spec: str, adapters: dict, settings: ServeSettings):
    import torch

    from sftkit.serve.catalog import load_catalog
    from sftkit.serve.engine import Engine
    from sftkit.serve.inprocess import InProcessBackend

    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    device = torch.device("cuda" if settings.device == "auto" and torch.cuda.is_available() else
                          "cpu" if settings.device == "auto" else settings.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {settings.device}: CUDA is not available here; use --device cpu")
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}.get(
        settings.dtype, torch.bfloat16 if bf16 else torch.float32)
    catalog = load_catalog(spec, adapters, device, dtype)
    return InProcessBackend(catalog, Engine(catalog, settings.batch_size)), next(iter(catalog.values())).tokenizer


def _gateway(spec: str | None, adapters: dict, settings: ServeSettings):
    import os

    from sftkit.serve.gateway import GatewayBackend

    if adapters:
        raise UserError("--adapter loads adapters in this process; in gateway mode the upstream serves them "
                        "(e.g. vllm serve BASE --enable-lora --lora-modules NAME=DIR)")
    api_key = None
    if settings.upstream_key_env:
        api_key = os.environ.get(settings.upstream_key_env)
        if not api_key:
            raise UserError(f"--upstream-key-env {settings.upstream_key_env}: that environment variable is not set")
    tokenizer = _tokenizer_of(spec) if spec else None
    return GatewayBackend(settings.upstream, api_key, settings.upstream_timeout_seconds, tokenizer), tokenizer


def _tokenizer_of(spec: str):
    """The tokenizer of a run (its tokenizer/ copy) or model, for prompt lengths and drift in gateway mode."""
    from sftkit.models import is_run_dir, load_tokenizer

    if is_run_dir(spec):
        for sub in ("tokenizer", "merged", "adapter"):
            if (Path(spec) / sub / "tokenizer_config.json").exists():
                return load_tokenizer(str(Path(spec) / sub))
        raise UserError(f"{spec} has no tokenizer/, merged/ or adapter/ with a tokenizer: was the run finished?")
    return load_tokenizer(spec)
