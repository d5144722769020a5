"""The audit log: one JSON object per answered request, rotated by size (audit.jsonl, audit.jsonl.1, ...).

A record holds the request id, the id of the API key used (never the key), timing, token counts, finish
reasons, guardrail verdicts, refusal and PII findings, and the drift score. Prompts, replies and the
request's `user` are written only when the server runs with `--log-content`.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import time
from pathlib import Path

from sftkit.paths import check_output

CONTENT_FIELDS = ("messages", "replies", "user")  # written only with --log-content


class AuditLog:
    """Appends records to `path`; thread-safe (logging's handler lock), so records never interleave."""

    def __init__(self, path: str | Path, max_bytes: int, backups: int, log_content: bool):
        self.path = check_output(path, "audit log", "file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.log_content = log_content
        self._handler = logging.handlers.RotatingFileHandler(self.path, maxBytes=max_bytes, backupCount=backups,
                                                             encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._logger = logging.getLogger(f"sftkit.serve.audit.{id(self)}")
        self._logger.propagate = False  # audit records never reach the console or library logs
        self._logger.setLevel(logging.INFO)
        self._logger.addHandler(self._handler)

    def write(self, record: dict) -> None:
        """Write `record` (with `time`, seconds since the epoch); content fields are dropped unless asked for."""
        record = {"time": round(time.time(), 3), **record}
        if not self.log_content:
            for name in CONTENT_FIELDS:
                record.pop(name, None)
        self._logger.info(json.dumps(record, ensure_ascii=False, separators=(",", ":")))

    def close(self) -> None:
        self._logger.removeHandler(self._handler)
        self._handler.close()


def log_files(path: str | Path) -> list[Path]:
    """The log and its rotated files, oldest first (audit.jsonl.5 ... audit.jsonl.1, audit.jsonl)."""
    path = Path(path)
    rotated = sorted((p for p in path.parent.glob(path.name + ".*") if p.suffix.lstrip(".").isdigit()),
                     key=lambda p: -int(p.suffix.lstrip(".")))
    return rotated + ([path] if path.exists() else [])
