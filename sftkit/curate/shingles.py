"""What near-duplicate detection sees of a row: the shingles of its parts, and the key of its numbers.

SFT rows are short: a one-word edit of a 15-word prompt changes 5 of its 11 word 5-grams, so word-5-gram
MinHash (the web-document setting) misses such copies. Character n-grams of the normalised text (lower-cased
words joined by single spaces) change only around the edit: adding a plural `s` to one word of a 10-word
prompt changes 9 of ~60 character 5-grams. The price is that any one-word substitution looks as small, so
two checks keep rows that share a template but differ in substance:

- **parts**: the prompt (system and user turns) and the reply (assistant turns) are shingled separately and
  must each be similar, so a template filled with another entity, whose reply differs, is kept however long
  the shared prompt is. Reply shingles are salted, so the parts' shingle sets are disjoint: the MinHash of the
  whole row is then the elementwise minimum of the parts' signatures, and the whole row's Jaccard similarity
  is at least the lower of the parts' (the mediant of two fractions lies between them), so LSH banding on the
  whole row finds every pair similar in both parts.
- **numbers**: rows whose numbers (runs of digits, in order) differ are never near duplicates: the
  same question about other numbers is another question, even when its reply is the same ("Yes.").
"""

from __future__ import annotations

import re

import numpy as np
import xxhash

from sftkit.curate.config import NearSection
from sftkit.curate.text import batch_ngram_hashes, char_codes, flat_ngram_hashes, fold32, word_hashes

_DIGITS_RE = re.compile(r"\d+")
_REPLY_SALT = np.uint64(0x9E3779B97F4A7C15)  # any non-zero constant: it only has to set reply shingles apart


class Shingler:
    """Shingles and number keys of batches of rows, as `NearSection` configures them."""

    def __init__(self, near: NearSection):
        self.near = near
        self.num_parts = 2 if near.parts == "prompt_and_reply" else 1

    def part_words(self, messages: list[dict], msg_words: list[list[str]]) -> list[list[str]]:
        """The words of each part of one row: [prompt, reply], or [whole conversation]."""
        if self.num_parts == 1:
            return [[w for ws in msg_words for w in ws]]
        prompt = [w for m, ws in zip(messages, msg_words) if m["role"] != "assistant" for w in ws]
        reply = [w for m, ws in zip(messages, msg_words) if m["role"] == "assistant" for w in ws]
        return [prompt, reply]

    def shingles(self, parts: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(32-bit shingle hashes, document index), sorted by document; `parts` lists the words of every part
        of every row in row order, so that document `row * num_parts + part` is that part of that row. A part
        shorter than one n-gram (but not empty) is one shingle of its own."""
        if self.near.shingles == "chars":
            flat, lengths = char_codes([" ".join(words) for words in parts])
            hashes, doc_index, _ = flat_ngram_hashes(flat, lengths, self.near.ngram_chars, whole_if_short=True)
        else:
            hashes, doc_index, _ = batch_ngram_hashes([word_hashes(words) for words in parts],
                                                      self.near.ngram_words, whole_if_short=True)
        if self.num_parts == 2:
            hashes = np.where(doc_index % 2 == 1, hashes ^ _REPLY_SALT, hashes)
        return fold32(hashes), doc_index

    def number_key(self, messages: list[dict]) -> int:
        """64-bit hash of the row's runs of digits in order (equal for rows without digits)."""
        numbers = [run for m in messages for run in _DIGITS_RE.findall(m["content"])]
        return xxhash.xxh3_64_intdigest(" ".join(numbers).encode("utf-8"))
