"""The replies of one target to every attack conversation, and the refusal margins of a local model.

All attacks' conversations go to the target together (one batched generation per round, longest first, so
conversations of similar length share a batch). A base model's replies and margins are cached like
`sftkit safety`'s (SFTKIT_HOME/eval_cache, keyed by the model's files, the exact conversations and the
settings that change them), so `--against default` costs nothing the second time; runs, endpoints and
guarded targets are never cached. Scores are computed afresh from the replies on every run.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict

from sftkit.redteam.attacks import Conversation
from sftkit.redteam.targets import EndpointTarget, LocalTarget, TargetReply, converse

CACHE_VERSION = 1


def _fingerprint(conversations: dict[str, list[Conversation]]) -> str:
    payload = json.dumps({a: [asdict(c) for c in cs] for a, cs in conversations.items()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _cache_key(spec: str, conversations, settings: dict) -> str | None:
    from sftkit.eval import cache

    fingerprint = cache.model_fingerprint(spec)
    if fingerprint is None:
        return None
    return cache.result_key(fingerprint, "redteam:" + _fingerprint(conversations),
                            {**settings, "redteam_cache": CACHE_VERSION})


def attack_target(spec: str | None, conversations: dict[str, list[Conversation]], *, settings, endpoint=None,
                  api_key: str | None = None, endpoint_model: str | None = None, guard=None,
                  use_cache: bool = True) -> dict:
    """{"description", "replies": {attack: [text]}, "blocked": {attack: [bool]}, "contexts": {attack: [messages
    each scored reply answered]}, "margins": {attack: [float]} or None, "seconds", "cached"}."""
    from sftkit.eval import cache

    result_settings = {"max_new_tokens": settings.max_new_tokens, "dtype": settings.dtype, "margin": settings.margin}
    key = _cache_key(spec, conversations, result_settings) if use_cache and not endpoint and guard is None else None
    if key is not None and (hit := cache.load(key)) is not None:
        return {**hit, "cached": True}
    started = time.perf_counter()
    if endpoint:
        target = EndpointTarget(endpoint, settings.max_new_tokens, api_key, endpoint_model,
                                settings.endpoint_concurrency)
    else:
        target = LocalTarget(spec, settings.max_new_tokens, settings.batch_size, settings.dtype, guard)
    names = list(conversations)
    flat = [c for name in names for c in conversations[name]]
    replies, contexts = converse(target, flat)
    result = {"description": target.description, "replies": {}, "blocked": {}, "contexts": {}, "margins": None,
              "generation_seconds": round(time.perf_counter() - started, 1)}
    margins = None
    if settings.margin and isinstance(target, LocalTarget):
        from sftkit.redteam.scoring import refusal_margins

        margin_started = time.perf_counter()
        margins = refusal_margins(target.model, target.tokenizer, contexts, settings.scoring_batch_size)
        result["margin_seconds"] = round(time.perf_counter() - margin_started, 1)
        result["margins"] = {}
    start = 0
    for name in names:
        end = start + len(conversations[name])
        result["replies"][name] = [r.text for r in replies[start:end]]
        result["blocked"][name] = [r.blocked for r in replies[start:end]]
        result["contexts"][name] = contexts[start:end]
        if margins is not None:
            result["margins"][name] = margins[start:end]
        start = end
    result["seconds"] = round(time.perf_counter() - started, 1)
    if key is not None:
        cache.save(key, result)
    return {**result, "cached": False}


def target_replies(result: dict, attack: str) -> list[TargetReply]:
    return [TargetReply(text, blocked) for text, blocked in zip(result["replies"][attack], result["blocked"][attack])]
