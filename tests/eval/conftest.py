"""Evaluation fixtures: an lm-eval-style multiple-choice file and a text file (the fake run is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.helpers import write_jsonl


@pytest.fixture
def mc_file(tmp_path):
    rows = [{"question": f"Question {i}: which word?", "choices": ["alpha", "beta", "gamma"], "answer": i % 3}
            for i in range(12)]
    return write_jsonl(tmp_path / "mc.jsonl", rows)


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("The fox ran over the hill.\n\nA cat sat on the mat and slept.\n\nRain fell all day.\n")
    return path
