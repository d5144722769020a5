"""The raw record every reader yields: a parsed `Row` (with where it came from) or a `BadRow` that could not be
parsed, and `RowError`, raised for a row that cannot become a conversation. Their own module so that readers,
schemas and the BIG-bench reader can all use them without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Row:
    """One raw record. `extra` holds reader-supplied context (e.g. a BIG-bench `task_prefix`)."""

    data: dict
    source: str
    line: int
    extra: dict = field(default_factory=dict)


@dataclass
class BadRow:
    """A record that could not be parsed; `reason` is a short code used for counting."""

    reason: str
    message: str
    source: str
    line: int
    raw: str = ""


class RowError(ValueError):
    """A row that cannot become a valid conversation. `reason` is a stable short code."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)
