"""The real SmolLM2 tokenizer switched to the shipped tool-aware template (examples/chatml_tools.jinja)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sftkit.data.chat_templates import use_chat_template

TOOL_TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "chatml_tools.jinja"


@pytest.fixture
def tool_tokenizer(tokenizer):
    original = tokenizer.chat_template
    use_chat_template(tokenizer, str(TOOL_TEMPLATE))
    yield tokenizer
    tokenizer.chat_template = original
