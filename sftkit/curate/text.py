"""Text features shared by the stages: normalised words, deterministic word hashes, word and character n-gram
hashes.

Words are lower-cased runs of letters and digits (`\\w+`), so case, whitespace and punctuation never make two
texts differ. Hashes are xxHash, not Python's `hash`, so that every run gives the same clusters and the same
output, byte for byte. N-gram hashes are computed for many documents at once with numpy: the documents'
word hashes (or character code points) are concatenated and n-grams that would cross a document boundary are
discarded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import xxhash

WORD_RE = re.compile(r"\w+")
_MASK32 = np.uint64(0xFFFFFFFF)
# Odd multipliers of the linear n-gram hash (position k of the n-gram gets _COEFFS[k]); fixed for determinism.
_COEFFS = (np.random.RandomState(20240607).randint(1, 2**62, size=128, dtype=np.uint64) * np.uint64(2)
           + np.uint64(1))


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, underscore); punctuation and whitespace are dropped."""
    return WORD_RE.findall(text.lower())


def conversation_text(messages: list[dict]) -> str:
    return "\n".join(m["content"] for m in messages)


def normalized_key(messages: list[dict], msg_words: list[list[str]] | None = None) -> int:
    """128-bit hash of the whole conversation with case, whitespace and punctuation normalised away.

    Roles take part, so a question asked by the user and the same text answered by the assistant differ.
    `msg_words` (the words of each message) saves recomputing them.
    """
    msg_words = msg_words if msg_words is not None else [words(m["content"]) for m in messages]
    text = "\x1e".join(m["role"] + "\x1f" + " ".join(w) for m, w in zip(messages, msg_words))
    return xxhash.xxh3_128_intdigest(text.encode("utf-8"))


class _HashCache(dict):
    """word -> 64-bit xxHash; lookups of known words run in C through `map(cache.__getitem__, ...)`."""

    def __missing__(self, word: str) -> int:
        if len(self) >= _CACHE_WORDS:
            self.clear()
        value = self[word] = xxhash.xxh3_64_intdigest(word.encode("utf-8"))
        return value


_CACHE_WORDS = 2_000_000  # ~200 MB at most; word frequencies are Zipfian, so hits dominate long before
_HASHES = _HashCache()


def word_hashes(tokens: Sequence[str]) -> np.ndarray:
    """64-bit xxHash of each word, as uint64."""
    return np.fromiter(map(_HASHES.__getitem__, tokens), dtype=np.uint64, count=len(tokens))


def ngram_hashes(hashes: np.ndarray, n: int) -> np.ndarray:
    """Hash of every run of `n` consecutive word hashes (empty when there are fewer than `n` words)."""
    count = len(hashes) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    acc = hashes[:count] * _COEFFS[0]
    for k in range(1, n):
        acc = acc + hashes[k:k + count] * _COEFFS[k]
    return _mix64(acc)


def batch_ngram_hashes(docs: Sequence[np.ndarray], n: int, whole_if_short: bool = False,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """N-gram hashes of many documents at once.

    Args:
        docs: word hashes of each document.
        n: words per n-gram.
        whole_if_short: a document with fewer than `n` (but at least one) words yields one hash of all its
            words, so that short documents still take part (near-duplicate shingles).

    Returns:
        (hashes, doc_index, position): one entry per n-gram; `position` is the index of its first word.
    """
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    nonempty = [d for d in docs if len(d)]
    flat = np.concatenate(nonempty) if nonempty else np.empty(0, dtype=np.uint64)
    return flat_ngram_hashes(flat, lengths, n, whole_if_short)


def char_codes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(code points of all `texts` concatenated as uint64, each text's length in characters): the input of
    `flat_ngram_hashes` for character n-grams."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    joined = "".join(texts).encode("utf-32-le", "surrogatepass")
    return np.frombuffer(joined, dtype=np.uint32).astype(np.uint64), lengths


def flat_ngram_hashes(flat: np.ndarray, lengths: np.ndarray, n: int, whole_if_short: bool = False,
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`batch_ngram_hashes` of documents given as one array of token hashes (words or characters) and the
    number of tokens of each document."""
    if lengths.sum() == 0:
        empty = np.empty(0, dtype=np.int64)
        return np.empty(0, dtype=np.uint64), empty, empty
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    doc_of_word = np.repeat(np.arange(len(lengths)), lengths)
    count = len(flat) - n + 1
    parts_h, parts_d, parts_p = [], [], []
    if count > 0:
        acc = flat[:count] * _COEFFS[0]
        for k in range(1, n):
            acc = acc + flat[k:k + count] * _COEFFS[k]
        keep = doc_of_word[:count] == doc_of_word[n - 1:n - 1 + count]
        idx = np.nonzero(keep)[0]
        parts_h.append(_mix64(acc[idx]))
        parts_d.append(doc_of_word[idx])
        parts_p.append(idx - starts[doc_of_word[idx]])
    if whole_if_short:
        short = np.nonzero((lengths > 0) & (lengths < n))[0]
        if len(short):
            parts_h.append(np.array([ngram_hashes(flat[starts[i]:starts[i] + lengths[i]], lengths[i])[0]
                                     for i in short], dtype=np.uint64))
            parts_d.append(short)
            parts_p.append(np.zeros(len(short), dtype=np.int64))
    if not parts_h:
        empty = np.empty(0, dtype=np.int64)
        return np.empty(0, dtype=np.uint64), empty, empty
    if len(parts_h) == 1:  # n-grams come out in document order already
        return parts_h[0], parts_d[0], parts_p[0]
    hashes, doc_index, position = np.concatenate(parts_h), np.concatenate(parts_d), np.concatenate(parts_p)
    order = np.lexsort((position, doc_index))
    return hashes[order], doc_index[order], position[order]


def _mix64(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser: spreads the linear combination over all bits (wrapping arithmetic)."""
    values = values ^ (values >> np.uint64(33))
    values = values * np.uint64(0xFF51AFD7ED558CCD)
    values = values ^ (values >> np.uint64(33))
    values = values * np.uint64(0xC4CEB9FE1A85EC53)
    return values ^ (values >> np.uint64(33))


def fold32(values: np.ndarray) -> np.ndarray:
    """64-bit hashes folded to 32 bits (MinHash's input width)."""
    return ((values >> np.uint64(32)) ^ values) & _MASK32
