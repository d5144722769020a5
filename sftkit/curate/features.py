"""One pass over the validated rows, in batches, computing everything the stages decide on.

Only compact per-row results are kept (a 128-bit key, MinHash signatures of the prompt and the reply, a key
of the row's numbers, a score, word counts, and the flags of flagged rows), so memory grows by ~1.1 KB per row
on top of the rows themselves. Every detector runs on every row, so a rejected row lists all its reasons, not
only the first stage that dropped it.

Batches are independent, so they run in `workers` forked processes and are merged in batch order: the
result does not depend on the number of workers. Each batch's conversations are sent to a worker (~1 ms per
2,048 rows) rather than read from the parent's memory, which would copy the pages holding them (reference
counts change on access) and could double the peak memory.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from sftkit.curate.config import CurateConfig
from sftkit.curate.decontam import Decontaminator
from sftkit.curate.dedup import MinHasher
from sftkit.curate.pii import PIIDetector
from sftkit.curate.quality import QualityChecker, heuristic_score
from sftkit.curate.shingles import Shingler
from sftkit.curate.text import normalized_key, word_hashes, words
from sftkit.curate.tokens import TokenLengths

BATCH_ROWS = 2048


@dataclass
class Features:
    keys: list[int]
    signatures: np.ndarray | None  # (rows, parts, num_perm) uint32
    number_keys: np.ndarray | None  # (rows,) uint64, when near.numbers_must_match
    heuristic: np.ndarray
    conversation_words: np.ndarray
    reply_words: np.ndarray
    flags: dict[int, list[tuple[str, str, str]]] = field(default_factory=dict)  # row -> (stage, reason, detail)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # summed over workers
    num_tokenized: int = 0
    workers: int = 1

    def reasons(self, row: int, stage: str | None = None) -> list[str]:
        return [r for s, r, _ in self.flags.get(row, ()) if stage is None or s == stage]


class _Detectors:
    def __init__(self, config: CurateConfig, tokenizer, decontaminator: Decontaminator | None):
        near = config.near
        self.config, self.decontaminator = config, decontaminator
        self.minhasher = MinHasher(near.num_perm, near.seed) if near.enabled else None
        self.shingler = Shingler(near) if near.enabled else None
        self.checker = QualityChecker(config.quality) if config.quality.enabled else None
        self.lengths = None
        if tokenizer is not None and config.quality.enabled:
            self.lengths = TokenLengths(tokenizer, config.max_length_tokens, config.quality.min_response_tokens,
                                        config.quality.too_long)
        self.pii = PIIDetector(config.pii.detect) if config.pii.detect else None


# What forked workers inherit: the detectors. Set only around a pool's lifetime.
_SHARED: tuple | None = None


def compute_features(examples, config: CurateConfig, tokenizer=None, decontaminator: Decontaminator | None = None,
                     batch_rows: int = BATCH_ROWS, workers: int | None = None) -> Features:
    """Features of `examples` (sftkit Examples); `tokenizer` enables the token-length filters."""
    global _SHARED
    n = len(examples)
    detectors = _Detectors(config, tokenizer, decontaminator)
    if detectors.lengths is not None:  # decided once, before any fork, so that every worker agrees
        detectors.lengths.probe([ex.messages for ex in examples[:64]])
    near = config.near
    parts = detectors.shingler.num_parts if near.enabled else 0
    feats = Features(keys=[0] * n, signatures=np.empty((n, parts, near.num_perm), np.uint32) if near.enabled else None,
                     number_keys=np.zeros(n, np.uint64) if near.enabled and near.numbers_must_match else None,
                     heuristic=np.zeros(n), conversation_words=np.zeros(n, np.int64), reply_words=np.zeros(n, np.int64))
    starts = list(range(0, n, batch_rows))
    workers = min(workers or _cpu_count(), len(starts))
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        _SHARED = (detectors,)
        batches = ((start, [ex.messages for ex in examples[start:start + batch_rows]]) for start in starts)
        gc.freeze()  # a worker's garbage collector would otherwise write to (and so copy) every inherited object
        try:
            with multiprocessing.get_context("fork").Pool(workers, initializer=_quiet_tokenizers) as pool:
                for result in pool.imap(_batch_in_worker, batches):
                    _merge(feats, result)
        finally:
            gc.unfreeze()
            _SHARED = None
    else:
        workers = 1
        for start in starts:
            _merge(feats, _batch([ex.messages for ex in examples[start:start + batch_rows]], detectors, start))
    feats.workers = workers
    return feats


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _quiet_tokenizers() -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per worker; the workers are the parallelism


def _batch_in_worker(job: tuple[int, list[list[dict]]]) -> dict:
    start, conversations = job
    return _batch(conversations, _SHARED[0], start)


def _batch(batch: list[list[dict]], det: _Detectors, start: int) -> dict:
    """Features of one batch of conversations (message lists) starting at row `start`."""
    out = {"start": start, "keys": [], "flags": {}, "seconds": defaultdict(float), "num_tokenized": 0,
           "heuristic": np.zeros(len(batch)), "conversation_words": np.zeros(len(batch), np.int64),
           "reply_words": np.zeros(len(batch), np.int64), "signatures": None, "number_keys": None}
    seconds, flags = out["seconds"], out["flags"]
    clock = time.perf_counter()
    doc_words, doc_hashes, batch_msg_words = [], [], []
    for offset, messages in enumerate(batch):
        msg_words = [words(m["content"]) for m in messages]
        batch_msg_words.append(msg_words)
        out["keys"].append(normalized_key(messages, msg_words))
        flat = [w for ws in msg_words for w in ws]
        out["conversation_words"][offset] = len(flat)
        out["reply_words"][offset] = sum(len(ws) for m, ws in zip(messages, msg_words) if m["role"] == "assistant")
        doc_words.append(flat)
        doc_hashes.append(word_hashes(flat))
    seconds["exact_dedup"] += time.perf_counter() - clock
    if det.minhasher is not None:
        clock = time.perf_counter()
        shingler = det.shingler
        parts = [part for messages, msg_words in zip(batch, batch_msg_words)
                 for part in shingler.part_words(messages, msg_words)]
        shingles, doc_index = shingler.shingles(parts)
        signatures = det.minhasher.signatures(shingles, doc_index, len(parts))
        out["signatures"] = signatures.reshape(len(batch), shingler.num_parts, -1)
        if det.config.near.numbers_must_match:
            out["number_keys"] = np.array([shingler.number_key(messages) for messages in batch], dtype=np.uint64)
        seconds["near_dedup"] += time.perf_counter() - clock
    clock = time.perf_counter()
    for offset, (messages, msg_words) in enumerate(zip(batch, batch_msg_words)):
        out["heuristic"][offset] = heuristic_score(messages, msg_words)
        if det.checker is not None:
            _add(flags, offset, "quality", det.checker.check(messages, msg_words))
    if det.lengths is not None:
        for offset, found in enumerate(det.lengths.check(batch)):
            _add(flags, offset, "quality", found)
        out["num_tokenized"] = det.lengths.take_tokenized()
    seconds["quality"] += time.perf_counter() - clock
    if det.decontaminator is not None:
        clock = time.perf_counter()
        for offset, found in sorted(det.decontaminator.check(doc_words, doc_hashes).items()):
            _add(flags, offset, "decontaminate", [found])
        seconds["decontaminate"] += time.perf_counter() - clock
    if det.pii is not None:
        clock = time.perf_counter()
        for offset, messages in enumerate(batch):
            _add(flags, offset, "pii", det.pii.check(messages))
        seconds["pii"] += time.perf_counter() - clock
    return out


def _merge(feats: Features, result: dict) -> None:
    start = result["start"]
    end = start + len(result["keys"])
    feats.keys[start:end] = result["keys"]
    if result["signatures"] is not None:
        feats.signatures[start:end] = result["signatures"]
    if result["number_keys"] is not None:
        feats.number_keys[start:end] = result["number_keys"]
    for name in ("heuristic", "conversation_words", "reply_words"):
        getattr(feats, name)[start:end] = result[name]
    for offset, found in result["flags"].items():
        feats.flags[start + offset] = found
    for stage, value in result["seconds"].items():
        feats.seconds[stage] += value
    feats.num_tokenized += result["num_tokenized"]


def _add(flags: dict, offset: int, stage: str, found: list[tuple[str, str]]) -> None:
    if found:
        flags.setdefault(offset, []).extend((stage, reason, detail) for reason, detail in found)
