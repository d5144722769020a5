"""API keys: read from a file and/or an environment variable, checked in constant time, never logged.

A key is known to the rest of the server only by its id (`keys.txt:3`, `env:1`: where it was read), which is
what the audit log and the metrics record.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

from sftkit.errors import UserError
from sftkit.paths import check_input

MIN_KEY_CHARS = 8
_SPLIT = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class _Key:
    key_id: str
    digest: bytes  # sha256 of the key: comparisons never depend on a key's length


class KeyRing:
    """The accepted keys; empty means the server is open (allowed on a loopback address only)."""

    def __init__(self, keys: list[tuple[str, str]]):
        self._keys = [_Key(key_id, _digest(key)) for key_id, key in keys]

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:  # never the keys themselves
        return f"KeyRing({len(self._keys)} keys)"

    @classmethod
    def load(cls, path: str | Path | None, env_var: str | None) -> KeyRing:
        """Keys from `path` (one per line, `#` comments and blank lines ignored) and the variable `env_var`."""
        keys: list[tuple[str, str]] = []
        if path is not None:
            path = check_input(path, "--api-keys file", "file", missing="create it with one key per line")
            for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                key = line.split("#", 1)[0].strip()
                if not key:
                    continue
                if len(key) < MIN_KEY_CHARS or any(ch.isspace() for ch in key):
                    raise UserError(f"an API key needs {MIN_KEY_CHARS}+ characters and no spaces (this line has "
                                    f"{len(key)} characters): use e.g. `python -c 'import secrets; "
                                    "print(secrets.token_urlsafe(32))'`", str(path), line_no)
                keys.append((f"{path.name}:{line_no}", key))
            if not keys:
                raise UserError("no API keys in the file: add one key per line", str(path))
        for number, key in enumerate((k for k in _SPLIT.split(os.environ.get(env_var or "", "")) if k), start=1):
            if len(key) < MIN_KEY_CHARS:
                raise UserError(f"${env_var}: key {number} has fewer than {MIN_KEY_CHARS} characters: use longer keys")
            keys.append((f"env:{number}", key))
        return cls(keys)

    def identify(self, authorization: str | None) -> str | None:
        """The id of the key in an `Authorization: Bearer KEY` header, or None when it is missing or unknown.

        Every known key is compared (with `hmac.compare_digest`) whether or not an earlier one matched, so the
        time taken does not say which key, or how much of one, was right.
        """
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        candidate = _digest(token.strip())
        found = None
        for key in self._keys:
            if hmac.compare_digest(candidate, key.digest) and found is None:
                found = key.key_id
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()
