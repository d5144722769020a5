"""Prometheus metrics of one server (its own registry, so several servers can live in one process).

Counters are cumulative since the server started; rates come from PromQL (`rate(...[5m])`), for example the
refusal rate `rate(sftkit_replies_refused_total[1h]) / rate(sftkit_replies_total[1h])`.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
SIMILARITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
NO_CATEGORY = "none"
disable_created_metrics()  # the `*_created` series double the exposition and say only when the server started


class Metrics:
    """The server's metrics; `gauge_functions` maps gauge names to callables read at scrape time."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("sftkit_requests", "Requests answered, by endpoint, model and HTTP status "
                                "(499: the client went away first).", ["endpoint", "model", "status"],
                                registry=registry)
        self.latency = Histogram("sftkit_request_latency_seconds", "Time from a request's arrival to its last "
                                 "byte.", ["endpoint", "model"], buckets=LATENCY_BUCKETS_SECONDS, registry=registry)
        self.time_to_first_token = Histogram("sftkit_time_to_first_token_seconds", "Time from a request's "
                                             "arrival to the first text of its reply.", ["model"],
                                             buckets=LATENCY_BUCKETS_SECONDS, registry=registry)
        self.prompt_tokens = Counter("sftkit_prompt_tokens", "Prompt tokens of answered requests.", ["model"],
                                     registry=registry)
        self.completion_tokens = Counter("sftkit_completion_tokens", "Generated tokens.", ["model"],
                                         registry=registry)
        self.in_flight = Gauge("sftkit_requests_in_flight", "Requests admitted and not yet answered.",
                               registry=registry)
        self.queue_depth = Gauge("sftkit_queue_depth", "Requests waiting for the generation thread.",
                                 registry=registry)
        self.generating = Gauge("sftkit_rows_generating", "Replies being generated now.", registry=registry)
        self.rows_cancelled = Counter("sftkit_rows_cancelled", "Replies stopped mid-generation: the client went "
                                      "away, the request timed out, or a guardrail cut the reply off.",
                                      registry=registry)
        self.batch_rows = Histogram("sftkit_batch_rows", "Replies generated together per batch.",
                                    buckets=BATCH_BUCKETS, registry=registry)
        self.guardrail = Counter("sftkit_guardrail_triggers", "Requests blocked (where=input) and replies "
                                 "withheld (where=output), by rule and hazard category.",
                                 ["where", "rule", "category"], registry=registry)
        self.replies = Counter("sftkit_replies", "Replies checked by the refusal classifier and PII detector "
                               "(guardrail notices are not replies).", ["model"], registry=registry)
        self.refusals = Counter("sftkit_replies_refused", "Replies the refusal classifier calls refusals.",
                                ["model"], registry=registry)
        self.pii = Counter("sftkit_replies_with_pii", "Replies holding personal data, by kind.", ["model", "kind"],
                           registry=registry)
        self.drift_checked = Counter("sftkit_drift_prompts", "Prompts compared with the training prompts, by "
                                     "measure.", ["measure"], registry=registry)
        self.drifted = Counter("sftkit_drift_prompts_far", "Prompts far from the training prompts, by measure "
                               "(length: outside the training prompts' 1st-99th percentile; embedding: nearest "
                               "training prompt less similar than for 99% of training prompts).", ["measure"],
                               registry=registry)
        self.similarity = Histogram("sftkit_drift_nearest_similarity", "Cosine similarity of a prompt to its "
                                    "nearest training prompt.", buckets=SIMILARITY_BUCKETS, registry=registry)
        self.rejected = Counter("sftkit_requests_rejected", "Requests refused before generation, by reason.",
                                ["reason"], registry=registry)

    def bind(self, admission, engine=None) -> None:
        """Read the gauges from the admission and the engine (in-process mode) at scrape time; count batches."""
        self.in_flight.set_function(lambda: admission.in_flight)
        self.queue_depth.set_function(lambda: engine.waiting if engine is not None else 0)
        self.generating.set_function(lambda: engine.generating if engine is not None else 0)
        if engine is not None:
            engine.observe_batch = self.batch_rows.observe
            engine.observe_cancelled = self.rows_cancelled.inc

    def guardrail_trigger(self, where: str, rule: str, category: str | None) -> None:
        self.guardrail.labels(where, rule, category or NO_CATEGORY).inc()

    def observe(self, exchange, findings: list[dict]) -> None:
        """Count one finished request (a `sftkit.serve.exchange.Exchange`) and its replies' `findings`."""
        model = exchange.model_label
        self.requests.labels(exchange.endpoint, model, str(exchange.status)).inc()
        self.latency.labels(exchange.endpoint, model).observe(time.monotonic() - exchange.started)
        if exchange.first_text_at is not None:
            self.time_to_first_token.labels(model).observe(exchange.first_text_at - exchange.started)
        if exchange.status == 200:
            self.prompt_tokens.labels(model).inc(exchange.prompt_tokens or 0)
            self.completion_tokens.labels(model).inc(exchange.completion_tokens or 0)
        for finding in findings:
            self.replies.labels(model).inc()
            if finding["refused"]:
                self.refusals.labels(model).inc()
            for kind in finding["pii"]:
                self.pii.labels(model, kind).inc()
        drift = exchange.drift
        if drift is not None:
            self.drift_checked.labels("length").inc()
            self.drifted.labels("length").inc(int(drift.length_far))
            if drift.similarity is not None:
                self.drift_checked.labels("embedding").inc()
                self.drifted.labels("embedding").inc(int(bool(drift.embedding_far)))
                self.similarity.observe(drift.similarity)

    def render(self) -> bytes:
        return generate_latest(self.registry)
