"""The README's `openai` client snippet runs as written against a real server (the address, key file and
model name are the test server's; tests/test_readme.py leaves this block to this test)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.serve.helpers import KEY, make_server, running

README = Path(__file__).resolve().parents[2] / "README.md"


def client_snippet() -> str:
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
                if "OpenAI(base_url=" in b]
    return block


def test_the_readme_client_snippet_gets_a_reply_and_a_stream(serve_run, serve_catalog, tmp_path):
    snippet = client_snippet()
    assert 'base_url="http://127.0.0.1:8000/v1"' in snippet and 'model="quickstart"' in snippet
    (tmp_path / "keys.txt").write_text(KEY + "\n")
    server = make_server(serve_run, tmp_path, catalog=serve_catalog)
    with running(server) as url:
        code = snippet.replace("http://127.0.0.1:8000/v1", url).replace('model="quickstart"', 'model="run"')
        done = subprocess.run([sys.executable, "-c", code], check=False, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    reply, streamed = done.stdout.split("\n", 1)
    assert reply and streamed == reply  # the streamed text, printed without a newline, equals the reply
