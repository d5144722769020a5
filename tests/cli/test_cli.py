"""The console script's contract for mistakes: one message, exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("args, message", [
    (["nosuchcmd"], "No such command 'nosuchcmd'"),
    (["train"], "Missing argument 'config'"),
    (["eval", "--model", "default", "--max-new-tokens", "many"], "Invalid value for '--max-new-tokens'"),
    (["data", "inspect", "x.jsonl", "--no-such-option"], "No such option: --no-such-option"),
])
def test_usage_errors_exit_2_without_traceback(args, message):
    proc = subprocess.run([sys.executable, "-m", "sftkit.cli", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_help_lists_every_verb_in_order():
    proc = subprocess.run([sys.executable, "-m", "sftkit.cli", "--help"], capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("│ ") and not line.startswith("│  ")]
    verbs = [line.split()[1] for line in lines if not line.split()[1].startswith("-")]
    assert verbs == ["train", "dpo", "estimate", "sweep", "generate", "chat", "eval", "compare", "safety", "redteam",
                     "report", "export", "serve", "monitor", "data", "model", "config"]
