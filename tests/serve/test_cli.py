"""`sftkit serve` from the command line: mistakes are one line before any model loads; a real process serves
on the address it prints and never prints a key."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.serve.helpers import KEY, client

STARTUP_TIMEOUT_SECONDS = 120


@pytest.mark.parametrize("args, message", [
    (["default", "--host", "0.0.0.0"], "--host 0.0.0.0 is reachable from other machines"),
    ([], "give the run directory or model to serve"),
    (["--upstream", "ftp://example"], "give an http:// or https:// URL"),
    (["default", "--adapter", "nameonly"], "use NAME=DIR"),
    (["default", "--batch-size", "0", "--max-queue", "0"], "2 problem(s)"),
    (["default", "--api-keys", "missing-keys.txt"], "does not exist"),
])
def test_mistakes_are_one_line_and_exit_2(run_cli, monkeypatch, args, message):
    monkeypatch.delenv("SFTKIT_API_KEYS", raising=False)
    code, _, err = run_cli("serve", *args)
    assert code == 2 and message in err and "Traceback" not in err


def test_a_served_process_answers_on_the_printed_address(serve_run):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SFTKIT_API_KEYS": ""}
    proc = subprocess.Popen([sys.executable, "-m", "sftkit.cli", "serve", str(serve_run), "--port", "0",
                             "--api-keys", str(serve_run.parent / "keys.txt"), "--default-temperature", "0",
                             "--audit-log", str(serve_run.parent / "cli-audit.jsonl")],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        deadline, line = time.monotonic() + STARTUP_TIMEOUT_SECONDS, ""
        while "serving" not in line:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            line = proc.stderr.readline()
        url = re.search(r"serving (http://127\.0\.0\.1:\d+/v1)", line).group(1)
        assert "2 API key(s)" in line
        answer = client(url).chat.completions.create(model="run", messages=[{"role": "user", "content": "Hi"}],
                                                    max_tokens=3)
        assert answer.usage.completion_tokens == 3
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert KEY not in line + out + err


def test_wrong_paths_are_one_line_before_any_model_loads(run_cli, tmp_path, monkeypatch):
    monkeypatch.delenv("SFTKIT_API_KEYS", raising=False)
    (tmp_path / "afile").write_text("x\n")
    (tmp_path / "keys.txt").write_text(KEY + "\n")
    for args, message in [
        (["serve", "no-such-model-dir/", "--api-keys", str(tmp_path)], f"--api-keys file {tmp_path} is a directory"),
        (["serve", "default", "--audit-log", str(tmp_path / "afile" / "audit.jsonl")],
         f"audit log {tmp_path}/afile/audit.jsonl cannot be created"),
        (["serve", "default", "--adapter", f"a={tmp_path}/missing"], f"--adapter a {tmp_path}/missing does not exist"),
        (["monitor", str(tmp_path / "missing.jsonl")], "does not exist"),
        (["monitor", str(tmp_path)], "is a directory"),
    ]:
        code, _, err = run_cli(*args)
        assert code == 2 and message in err and "Traceback" not in err, (args, err)
