"""`sftkit serve`: an OpenAI-compatible server for fine-tuned models (in-process, with dynamic batching and
PEFT adapters by name) or a gateway in front of another OpenAI-compatible server, with API keys, limits,
guardrails tagged by hazard category, Prometheus metrics, a rotated JSONL audit log and input drift; and
`sftkit monitor`, which summarises an audit log against the rates the run was evaluated at.

Modules: settings (options), auth (keys), schema (requests, events, errors), limits, catalog (served models),
engine (batching thread), inprocess and gateway (the two backends), exchange (one request's life),
responses (OpenAI bodies), app (routes), metrics, audit, drift, monitor, server (assembly and uvicorn).
"""
