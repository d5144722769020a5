"""Personal data and secrets: e-mail addresses, phone numbers, card numbers (Luhn-checked), API keys.

Detectors favour precision: a phone number needs separators or a leading `+` (a bare run of digits is far
more often an id or a quantity), and a card number must pass the Luhn checksum. Masking rewrites only the
conversation fields of a row (see `TEXT_FIELDS`); ids and other metadata pass through unchanged.
"""

from __future__ import annotations

import re

EMAIL_RE = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
PHONE_RE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,4}){1,4}"  # +44 20 7946 0958, +1-202-555-0143
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"  # (202) 555-0143
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 202-555-0143
    r")(?![\w-])"
)
CARD_RE = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
SECRET_RE = re.compile(
    r"\bAKIA[0-9A-Z]{16}\b"  # AWS access key id
    r"|\bgh[pousr]_[A-Za-z0-9]{36,}\b"  # GitHub token
    r"|\bgithub_pat_[A-Za-z0-9_]{40,}\b"
    r"|\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"  # OpenAI / Anthropic style keys
    r"|\b[sr]k_live_[0-9A-Za-z]{16,}\b"  # Stripe
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|\bAIza[0-9A-Za-z_-]{35}\b"  # Google API key
    r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWT
    r"|-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"
)
# A long value with letters and digits assigned to a secret-looking name: only the value is a match.
ASSIGNED_SECRET_RE = re.compile(
    r"(?i:\b(?:api[_-]?key|secret[_-]?key|access[_-]?token|auth[_-]?token|password|passwd|client[_-]?secret)"
    r"\b[\"']?\s*[:=]\s*[\"']?)(?P<value>(?=[A-Za-z0-9_\-/+]*\d)(?=[A-Za-z0-9_\-/+]*[A-Za-z])"
    r"[A-Za-z0-9_\-/+]{16,})"
)
_SECRET_HINT_RE = re.compile("AKIA|gh[pousr]_|github_pat_|sk-|k_live_|xox|AIza|eyJ|PRIVATE KEY")
# Phone and card numbers need 8+ digits, some of them adjacent.
_DIGITS_RE = re.compile(r"\d\d")
PLACEHOLDERS = {"email": "[EMAIL]", "phone": "[PHONE]", "credit_card": "[CREDIT_CARD]", "secret": "[SECRET]"}
# Fields of the supported row schemas that hold conversation text (formats.py); only these are masked.
TEXT_FIELDS = ("messages", "conversations", "instruction", "input", "output", "system", "prompt", "completion",
               "target", "target_scores")


def luhn_valid(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = ord(ch) - 48
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


class PIIDetector:
    """Finds PII in text; `find` gives (kind, start, end, matched text) spans without overlaps."""

    def __init__(self, kinds: list[str]):
        self.kinds = list(kinds)

    def find(self, text: str) -> list[tuple[str, int, int, str]]:
        spans = []
        # Each regex runs only on text holding a string it needs (the regexes cost ~0.1 ms per reply each).
        if "secret" in self.kinds:
            if _SECRET_HINT_RE.search(text):
                spans += [("secret", m.start(), m.end(), m.group(0)) for m in SECRET_RE.finditer(text)]
            low = text.lower()
            if "passw" in low or "secret" in low or "token" in low or "api" in low:
                spans += [("secret", m.start("value"), m.end("value"), m.group("value"))
                          for m in ASSIGNED_SECRET_RE.finditer(text)]
        if "email" in self.kinds and "@" in text:
            spans += [("email", m.start(), m.end(), m.group(0)) for m in EMAIL_RE.finditer(text)]
        if not _DIGITS_RE.search(text):
            return _resolve(spans)
        if "credit_card" in self.kinds:
            for m in CARD_RE.finditer(text):
                digits = re.sub(r"[ -]", "", m.group(0))
                if 13 <= len(digits) <= 19 and luhn_valid(digits) and len(set(digits)) > 1:
                    spans.append(("credit_card", m.start(), m.end(), m.group(0)))
        if "phone" in self.kinds:
            for m in PHONE_RE.finditer(text):
                if 8 <= sum(ch.isdigit() for ch in m.group(0)) <= 15:  # E.164 numbers have at most 15 digits
                    spans.append(("phone", m.start(), m.end(), m.group(0)))
        return _resolve(spans)

    def check(self, messages: list[dict]) -> list[tuple[str, str]]:
        """[(reason, detail)] per kind found anywhere in the conversation."""
        found: dict[str, list[str]] = {}
        for m in messages:
            for kind, _, _, match in self.find(m["content"]):
                found.setdefault(kind, []).append(match)
        return [(f"pii_{kind}", f"{len(hits)} match(es), e.g. {_redact(hits[0])!r}") for kind, hits in found.items()]

    def mask(self, text: str) -> str:
        spans = self.find(text)
        for kind, start, end, _ in reversed(spans):
            text = text[:start] + PLACEHOLDERS[kind] + text[end:]
        return text

    def mask_row(self, raw):
        """A copy of `raw` with PII masked in its conversation fields; other fields are the same objects."""
        if not isinstance(raw, dict):
            return raw
        return {k: self._mask_value(v) if k in TEXT_FIELDS else v for k, v in raw.items()}

    def _mask_value(self, value):
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, list):
            return [self._mask_value(v) for v in value]
        if isinstance(value, dict):
            return {k: self._mask_value(v) for k, v in value.items()}
        return value


def _resolve(spans: list[tuple[str, int, int, str]]) -> list[tuple[str, int, int, str]]:
    """Overlapping matches: the earlier, then the longer, wins (a card number is not also a phone number)."""
    spans.sort(key=lambda s: (s[1], -s[2]))
    out, end = [], -1
    for span in spans:
        if span[1] >= end:
            out.append(span)
            end = span[2]
    return out


def _redact(match: str) -> str:
    """Enough of a match to recognise it in a report, not enough to leak it."""
    if len(match) <= 6:
        return "*" * len(match)
    return match[:3] + "*" * (len(match) - 5) + match[-2:]
