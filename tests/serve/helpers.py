"""What the serve tests share: the test keys, a never-stopping tiny model, `make_server` (a Server built as
`sftkit serve` builds it), `running(...)`, which starts uvicorn on 127.0.0.1 on a free port in a daemon thread and
stops it afterwards, the official client, and one /metrics sample.

The tiny base has an untied output layer whose rows for the stop tokens are zero: their logit is 0 while the
largest of the other 49k random logits is positive, so greedy replies never end early and every reply runs to
its max_tokens (or a stop string). Tests then know each reply's length exactly.
"""

from __future__ import annotations

import contextlib
import threading
import time

import torch

from tests.helpers import make_tiny_model

KEY = "test-key-0123456789"
OTHER_KEY = "other-key-9876543210"
STARTUP_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 15
INTENT_PROMPTS = [f"Utterance: play song number {i} by the band" for i in range(12)] + \
                 [f"Utterance: what is the weather in city {i} tomorrow" for i in range(12)]


def never_stopping_model(seed: int = 0):
    model = make_tiny_model(seed=seed).eval()
    model.config.tie_word_embeddings = False
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(model.lm_head.weight.shape, generator=generator) * 0.02
    weight[[0, 2]] = 0.0  # <|endoftext|> and <|im_end|>: the tokenizer's stop ids
    model.lm_head.weight = torch.nn.Parameter(weight)
    return model


def make_server(run, tmp_path, catalog=None, **options):
    """A Server for `run` (in-process unless `upstream` is given) with the test key and an audit log, built as
    `sftkit serve` builds it; with `catalog` (models already loaded) only the engine and the rest are new."""
    from sftkit.serve.server import Server, build_server
    from sftkit.serve.settings import settings_from

    options = {"api_keys_file": run.parent / "keys.txt", "audit_log": tmp_path / "audit.jsonl",
               "drift_embedding": "hashed", "default_temperature": 0.0, **options}
    spec = options.pop("spec", str(run))
    settings = settings_from(options)
    if catalog is None:
        return build_server(spec, options.pop("adapters", None), settings)
    from sftkit.safety.guardrails import Guardrail
    from sftkit.serve.audit import AuditLog
    from sftkit.serve.auth import KeyRing
    from sftkit.serve.drift import DriftReference
    from sftkit.serve.engine import Engine
    from sftkit.serve.inprocess import InProcessBackend

    backend = InProcessBackend(catalog, Engine(catalog, settings.batch_size))
    drift = DriftReference.for_run(run, catalog["run"].tokenizer, settings.drift_embedding)
    return Server(settings, backend, KeyRing.load(settings.api_keys_file, None),
                  Guardrail.from_options(settings.guard_blocklists, settings.guard_classifier), drift,
                  AuditLog(settings.audit_log, settings.audit_max_bytes, settings.audit_backups, settings.log_content))


@contextlib.contextmanager
def running(server):
    """Serve `server` on 127.0.0.1:FREE_PORT; yields the base URL (`http://127.0.0.1:PORT/v1`)."""
    from sftkit.serve.server import bound_socket, uvicorn_server

    sock = bound_socket("127.0.0.1", 0)
    uv = uvicorn_server(server.app())
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        uv.should_exit = True
        thread.join(STOP_TIMEOUT_SECONDS)
        sock.close()


def client(url: str, key: str = KEY, **options):
    import openai

    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=60, **options)


def metric(url: str, name: str, key: str = KEY, **labels) -> float:
    """The sum of the /metrics samples called `name` with these labels (0 when there are none)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url.removesuffix("/v1") + "/metrics", headers={"Authorization": f"Bearer {key}"}).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))
