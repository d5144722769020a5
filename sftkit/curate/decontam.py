"""Decontamination: training rows that share a word n-gram with an evaluation example.

Every message of an evaluation example, and every line of it, is a unit: a unit of at least `n` words gives
all its n-grams; a shorter one of at least `min_words` words gives itself as one n-gram (so a short question
pasted into a prompt is still found). Lines and n-grams found in more than half of one evaluation source's
examples (a BIG-bench `task_prefix`, a shared instruction, a common choice) are boilerplate, not evidence:
such lines are removed from the units and such n-grams ignored. Hash hits are confirmed word by word, so a
reported overlap is always real.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from sftkit.curate.text import batch_ngram_hashes, ngram_hashes, word_hashes, words

# An n-gram in more than this share of one evaluation source's examples (and in 3 or more) is boilerplate.
_BOILERPLATE_SHARE = 0.5
_BOILERPLATE_MIN_EXAMPLES = 3
_FILTER_BITS = 22  # 4 MB table; ~100k evaluation n-grams set ~2% of it


class Decontaminator:
    """An n-gram index of evaluation examples, probed with batches of training rows."""

    def __init__(self, specs: list[str], ngram_words: int = 13, min_words: int = 6, fmt: str = "auto"):
        from sftkit.data.dataset import load_conversations

        self.specs, self.n, self.min_words = list(specs), ngram_words, min_words
        examples, report = load_conversations(self.specs, fmt, on_bad_row="skip")
        self.num_examples, self.num_eval_rows_skipped = len(examples), report.rows_skipped
        self.labels = [f"{ex.source}:{ex.line}" for ex in examples]
        self.unit_words: list[list[str]] = []
        entries: dict[int, list[tuple[int, int, int]]] = defaultdict(list)  # length -> (hash, unit, position)
        seen: dict[tuple[str, int, int], tuple[int, int]] = {}  # (source, length, hash) -> (last example, count)
        unit_example: list[int] = []
        per_source = defaultdict(int)
        line_counts: dict[tuple[str, str], int] = defaultdict(int)  # (source, line words) -> examples with it
        for ex in examples:
            per_source[ex.source] += 1
            for line in {" ".join(words(line)) for m in ex.messages for line in m["content"].splitlines()}:
                line_counts[(ex.source, line)] += 1
        boilerplate_lines = {key for key, count in line_counts.items() if _is_boilerplate(count, per_source[key[0]])}
        self.num_boilerplate_lines = len(boilerplate_lines)
        for index, ex in enumerate(examples):
            for text in _units(ex.messages, lambda line: (ex.source, " ".join(words(line))) in boilerplate_lines):
                tokens = words(text)
                length = self.n if len(tokens) >= self.n else len(tokens)
                if length < self.min_words:
                    continue
                unit = len(self.unit_words)
                self.unit_words.append(tokens)
                unit_example.append(index)
                hashes = ngram_hashes(word_hashes(tokens), length)
                for position, h in enumerate(hashes.tolist()):
                    entries[length].append((h, unit, position))
                    key = (ex.source, length, h)
                    last, count = seen.get(key, (-1, 0))
                    if last != index:
                        seen[key] = (index, count + 1)
        boilerplate = {(length, h) for (source, length, h), (_, count) in seen.items()
                       if _is_boilerplate(count, per_source[source])}
        self.num_boilerplate_ngrams = len(boilerplate)
        self.unit_example = np.array(unit_example, dtype=np.int64)
        # length -> (sorted hashes, unit of each, position of each)
        self.index: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for length, items in entries.items():
            items = sorted({t for t in items if (length, t[0]) not in boilerplate})
            if items:
                arr = np.array(items, dtype=np.uint64)
                self.index[length] = (arr[:, 0], arr[:, 1].astype(np.int64), arr[:, 2].astype(np.int64))
        self.num_ngrams = sum(len(v[0]) for v in self.index.values())
        # Top bits of every indexed hash: one gather from this table rules out almost every training n-gram
        # before the (cache-unfriendly) binary search.
        self.filter = np.zeros(1 << _FILTER_BITS, dtype=bool)
        for hashes, _, _ in self.index.values():
            self.filter[(hashes >> np.uint64(64 - _FILTER_BITS)).astype(np.int64)] = True

    def check(self, docs_words: Sequence[list[str]], docs_hashes: Sequence[np.ndarray]) -> dict[int, tuple[str, str]]:
        """Document index (within the batch) -> ("contaminated", detail naming the n-gram and the eval example)."""
        found: dict[int, tuple[str, str]] = {}
        for length, (eval_hashes, eval_unit, eval_pos) in sorted(self.index.items(), reverse=True):
            hashes, doc_index, position = batch_ngram_hashes(docs_hashes, length)
            maybe = np.nonzero(self.filter[(hashes >> np.uint64(64 - _FILTER_BITS)).astype(np.int64)])[0]
            if not len(maybe):
                continue
            slot = np.searchsorted(eval_hashes, hashes[maybe])
            slot[slot == len(eval_hashes)] = 0
            hits = maybe[eval_hashes[slot] == hashes[maybe]]
            slot = np.searchsorted(eval_hashes, hashes[hits])
            for k, hit in enumerate(hits.tolist()):
                doc = int(doc_index[hit])
                if doc in found:
                    continue
                start = int(position[hit])
                gram = docs_words[doc][start:start + length]
                first = int(slot[k])  # equal hashes are adjacent: confirm against each until a real match
                while first < len(eval_hashes) and eval_hashes[first] == hashes[hit]:
                    unit, at = int(eval_unit[first]), int(eval_pos[first])
                    if self.unit_words[unit][at:at + length] == gram:
                        label = self.labels[int(self.unit_example[unit])]
                        text = " ".join(gram)
                        found[doc] = ("contaminated", f"shares the {length}-gram {_clip(text)!r} with {label}")
                        break
                    first += 1
        return found


def _is_boilerplate(num_examples: int, source_examples: int) -> bool:
    return num_examples >= _BOILERPLATE_MIN_EXAMPLES and num_examples > _BOILERPLATE_SHARE * source_examples


def _units(messages: list[dict], is_boilerplate) -> list[str]:
    """Each message without its boilerplate lines, and each of its remaining lines when it has several."""
    units = []
    for m in messages:
        lines = [line for line in m["content"].splitlines() if line.strip() and not is_boilerplate(line)]
        units.append("\n".join(lines))
        if len(lines) > 1:
            units.extend(lines)
    return units


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
