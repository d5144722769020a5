"""`sftkit data inspect --chat-template FILE` on tool-call data: exactly which tokens of a call are trained, and
the one-line refusal of a template that cannot render tools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TEMPLATE = str(Path(__file__).resolve().parents[2] / "examples" / "chatml_tools.jinja")
ROW = {"tools": [{"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}],
       "messages": [{"role": "user", "content": "Weather in Paris?"},
                    {"role": "assistant", "content": "<think>Look it up.</think>", "tool_calls": [
                        {"id": "a", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
                    {"role": "tool", "tool_call_id": "a", "content": '{"t": 18}'},
                    {"role": "assistant", "content": "18 C."}]}
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>'


@pytest.fixture
def data_file(tmp_path, tokenizer):
    path = tmp_path / "tools.jsonl"
    path.write_text(json.dumps(ROW) + "\n")
    return path


@pytest.mark.parametrize("options, trained_text", [
    ((), ["<think>\nLook it up.\n</think>\n\n" + CALL, "18 C.<|im_end|>"]),
    (("--no-train-on-reasoning",), [CALL, "18 C.<|im_end|>"]),
    (("--train-on-tool-results",), ["<think>\nLook it up.\n</think>\n\n" + CALL, '{"t": 18}', "18 C.<|im_end|>"]),
])
def test_inspect_shows_the_trained_call(run_cli, data_file, tokenizer, options, trained_text):
    code, out, err = run_cli("data", "inspect", str(data_file), "--chat-template", TEMPLATE, "--json", *options)
    assert code == 0, err
    example = json.loads(out)["examples"][0]
    assert example["trained_text"] == trained_text
    assert example["num_trained_tokens"] == sum(len(tokenizer.encode(t, add_special_tokens=False))
                                                for t in trained_text)


def test_inspect_without_a_tool_template_names_the_template_and_the_fix(run_cli, data_file, default_dir):
    code, out, err = run_cli("data", "inspect", str(data_file))
    assert (code, out) == (2, "")
    assert err == (f"error: {data_file}:1: the chat template of {default_dir} does not render the `tools` list "
                   "(function schemas) or the `tool_calls` of assistant turns or reasoning (`reasoning_content`, "
                   "`thinking` or <think> blocks), so they would be neither seen nor trained: set "
                   "model.chat_template (or --chat-template) to a template FILE that renders them, e.g. "
                   "examples/chatml_tools.jinja for ChatML models such as SmolLM2\n")


def test_inspect_with_a_missing_template_file(run_cli, data_file, tmp_path):
    code, out, err = run_cli("data", "inspect", str(data_file), "--chat-template", str(tmp_path / "nope.jinja"))
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {tmp_path / 'nope.jinja'}: chat template file not found")
