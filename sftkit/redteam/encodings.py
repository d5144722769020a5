"""The encodings the encoding attacks hide a request in, each with its inverse, and the decoding of a reply
written in kind (so a reply in base64 is read as what it says, not as noise).

leetspeak lower-cases and swaps a, e, i, o, s, t for 4, 3, 1, 0, 5, 7; decoding swaps back, so it returns the
lower-cased text for any text without those digits (digits in the original cannot be told from swapped
letters).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re

_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})
_UNLEET = str.maketrans({"4": "a", "3": "e", "1": "i", "0": "o", "5": "s", "7": "t"})
# runs that could be base64 text: at least 8 characters of its alphabet, with padding at the end only
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{8,}={0,2}")


def to_base64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def from_base64(text: str) -> str:
    return base64.b64decode(text.encode("ascii"), validate=True).decode("utf-8")


def rot13(text: str) -> str:
    """ROT13 of the ASCII letters; its own inverse."""
    return codecs.encode(text, "rot13")


def to_leetspeak(text: str) -> str:
    return text.lower().translate(_LEET)


def from_leetspeak(text: str) -> str:
    return text.translate(_UNLEET)


def decode_base64_reply(reply: str) -> str:
    """The reply with every run that decodes as base64 to printable UTF-8 text replaced by that text."""

    def replace(match: re.Match) -> str:
        run = match.group(0)
        run = run[: len(run) - len(run) % 4] if not run.endswith("=") else run
        try:
            decoded = from_base64(run)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return match.group(0)
        return decoded if decoded.isprintable() or "\n" in decoded else match.group(0)

    return _BASE64_RUN.sub(replace, reply)


DECODERS = {"base64": decode_base64_reply, "rot13": rot13, "leetspeak": from_leetspeak}
