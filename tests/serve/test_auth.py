"""API keys: file and environment, key ids instead of keys, constant-time checks, and the bind rule."""

from __future__ import annotations

import pytest

from sftkit.errors import UserError
from sftkit.serve.auth import KeyRing
from sftkit.serve.server import check_bind
from sftkit.serve.settings import ServeSettings, is_loopback

KEY_A, KEY_B, KEY_C = "alpha-key-000000", "bravo-key-111111", "charlie-key-2222"


def test_keys_from_a_file_and_the_environment_are_known_by_where_they_were_read(tmp_path, monkeypatch):
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# team keys\n{KEY_A}\n\n{KEY_B}   # ci\n")
    monkeypatch.setenv("MY_KEYS", f" {KEY_C}, ")
    ring = KeyRing.load(keys, "MY_KEYS")
    assert len(ring) == 3 and KEY_A not in repr(ring)
    assert [ring.identify(f"Bearer {k}") for k in (KEY_A, KEY_B, KEY_C)] == ["keys.txt:2", "keys.txt:4", "env:1"]
    assert ring.identify(f"bearer  {KEY_A} ") == "keys.txt:2"
    for header in (None, "", KEY_A, f"Basic {KEY_A}", "Bearer ", f"Bearer {KEY_A}x", f"Bearer {KEY_A[:-1]}"):
        assert ring.identify(header) is None


def test_bad_key_files_are_one_line_errors(tmp_path, monkeypatch):
    short = tmp_path / "short.txt"
    short.write_text(f"{KEY_A}\nshort\n")
    with pytest.raises(UserError) as err:
        KeyRing.load(short, None)
    assert (err.value.source, err.value.line) == (str(short), 2) and "short" not in err.value.message
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n")
    with pytest.raises(UserError, match="no API keys"):
        KeyRing.load(empty, None)
    with pytest.raises(UserError, match="does not exist"):
        KeyRing.load(tmp_path / "missing.txt", None)
    monkeypatch.setenv("MY_KEYS", "tiny")
    with pytest.raises(UserError, match=r"\$MY_KEYS: key 1"):
        KeyRing.load(None, "MY_KEYS")


def test_only_loopback_binds_may_run_without_keys():
    assert [is_loopback(h) for h in ("127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "0.0.0.0", "::",
                                     "10.0.0.5", "example.com")] == [True] * 5 + [False] * 4
    open_ring, one_key = KeyRing([]), KeyRing([("k:1", KEY_A)])
    check_bind(ServeSettings(), open_ring)
    check_bind(ServeSettings(host="0.0.0.0"), one_key)
    with pytest.raises(UserError, match="--host 0.0.0.0 is reachable from other machines"):
        check_bind(ServeSettings(host="0.0.0.0"), open_ring)
