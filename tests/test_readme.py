"""The README's Python blocks run as written (in a fresh directory, on the real default model)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_a_python_example():
    blocks = python_blocks()
    assert blocks and any("train(" in b for b in blocks)


@pytest.mark.integration
@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(index, tmp_path):
    code = python_blocks()[index]
    if "OpenAI(base_url=" in code:
        pytest.skip("talks to a running `sftkit serve`: tests/serve/test_readme.py runs it against one")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    if "train(" in code:
        assert re.search(r"steps 2, validation loss \d+\.\d{4} -> \d+\.\d{4}, adapter in \S+adapter", done.stdout)
        assert (tmp_path / "runs" / "python-example" / "summary.json").is_file()
