"""Labels of tool-call and reasoning conversations under the shipped tool-aware template
(examples/chatml_tools.jinja) with the real SmolLM2 tokenizer: calls trained, results masked, reasoning per
option; templates that cannot render the features, or drop earlier reasoning, are refused or handled."""

from __future__ import annotations

from pathlib import Path

import pytest

from sftkit.data.chat_labels import IGNORE_INDEX, TemplateError, tokenize_conversation
from sftkit.data.chat_templates import read_chat_template, use_chat_template
from sftkit.errors import UserError

TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "chatml_tools.jinja"
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
SYSTEM = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face\n\nYou can call "
          'these functions:\n<tools>\n{"name":"get_weather","description":"Weather in a city","parameters":{"type":'
          '"object","properties":{"city":{"type":"string"}},"required":["city"]}}\n</tools>\nTo call one, reply with '
          '<tool_call>\n{"name": NAME, "arguments": {...}}\n</tool_call><|im_end|>\n')
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def call(city: str, call_id: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": {"city": city}}}


# Two user turns: a call, its result and an answer; then a reply with text before its call, and its answer.
CONVERSATION = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [call("Paris", "call_1")]},
    {"role": "tool", "content": '{"t": 18}', "tool_call_id": "call_1", "name": "get_weather"},
    {"role": "assistant", "content": "18 C in Paris."},
    {"role": "user", "content": "And Rome?"},
    {"role": "assistant", "content": "Checking.", "tool_calls": [call("Rome", "call_2")]},
    {"role": "tool", "content": '{"t": 21}', "tool_call_id": "call_2", "name": "get_weather"},
    {"role": "assistant", "content": "21 C in Rome."},
]
ROME_CALL = CALL.replace("Paris", "Rome")
# (text, trained) pieces of the rendering, checked by hand against the template
PIECES = [
    (SYSTEM + "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n", False),
    (CALL + "<|im_end|>", True),
    ("\n<|im_start|>tool\n", False), ('{"t": 18}', "result"), ("<|im_end|>\n<|im_start|>assistant\n", False),
    ("18 C in Paris.<|im_end|>", True),
    ("\n<|im_start|>user\nAnd Rome?<|im_end|>\n<|im_start|>assistant\n", False),
    ("Checking.\n" + ROME_CALL + "<|im_end|>", True),
    ("\n<|im_start|>tool\n", False), ('{"t": 21}', "result"), ("<|im_end|>\n<|im_start|>assistant\n", False),
    ("21 C in Rome.<|im_end|>", True),
    ("\n", False),
]


def expected(tokenizer, pieces, trained_kinds=(True,)) -> tuple[str, list[int], list[int]]:
    """Text, ids and labels from pieces tokenised one by one. Every boundary is at a special token or a newline
    that the whole text tokenises apart too (a run of newlines before text is split before its last newline,
    so "\n\n6" is "\n" + "\n" + "6" and pieces split "\n\n" into "\n" and "\n")."""
    ids, labels = [], []
    for text, kind in pieces:
        piece = tokenizer.encode(text, add_special_tokens=False)
        ids += piece
        labels += piece if kind in trained_kinds else [IGNORE_INDEX] * len(piece)
    return "".join(text for text, _ in pieces), ids, labels


def test_calls_trained_results_masked(tool_tokenizer):
    tok = tokenize_conversation(tool_tokenizer, CONVERSATION, tools=[WEATHER])
    text, ids, labels = expected(tool_tokenizer, PIECES)
    assert tok.text == text
    assert (tok.input_ids, tok.labels) == (ids, labels)
    assert tok.input_ids[:3] == [1, 9690, 198] and tok.num_trained_tokens == 80


def test_train_on_tool_results_trains_their_text_only(tool_tokenizer):
    tok = tokenize_conversation(tool_tokenizer, CONVERSATION, tools=[WEATHER], train_on_tool_results=True)
    _, ids, labels = expected(tool_tokenizer, PIECES, trained_kinds=(True, "result"))
    assert (tok.input_ids, tok.labels) == (ids, labels)


def test_train_on_last_trains_the_final_answer(tool_tokenizer):
    tok = tokenize_conversation(tool_tokenizer, CONVERSATION, "last", tools=[WEATHER])
    last = [(text, kind if i == len(PIECES) - 2 else False) for i, (text, kind) in enumerate(PIECES)]
    assert tok.labels == expected(tool_tokenizer, last)[2]


REASONING = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "reasoning_content": "I need the tool.", "tool_calls": [call("Paris", "c")]},
    {"role": "tool", "content": "18", "tool_call_id": "c", "name": "get_weather"},
    {"role": "assistant", "content": "18 C.", "reasoning_content": "The tool said 18."},
]
REASONING_PIECES = [
    (SYSTEM + "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n", False),
    ("<think>\nI need the tool.\n</think>\n", "reasoning"), ("\n", "reasoning"), (CALL + "<|im_end|>", True),
    ("\n<|im_start|>tool\n18<|im_end|>\n<|im_start|>assistant\n", False),
    ("<think>\nThe tool said 18.\n</think>\n", "reasoning"), ("\n", "reasoning"), ("18 C.<|im_end|>", True),
    ("\n", False),
]


@pytest.mark.parametrize("train_on_reasoning, kinds", [(True, (True, "reasoning")), (False, (True,))])
def test_reasoning_trained_or_masked_with_its_markup(tool_tokenizer, train_on_reasoning, kinds):
    tok = tokenize_conversation(tool_tokenizer, REASONING, tools=[WEATHER], train_on_reasoning=train_on_reasoning)
    text, ids, labels = expected(tool_tokenizer, REASONING_PIECES, kinds)
    assert tok.text == text
    assert (tok.input_ids, tok.labels) == (ids, labels)


def test_smollm2_template_cannot_render_tools_or_reasoning(tokenizer):
    with pytest.raises(TemplateError) as info:
        tokenize_conversation(tokenizer, CONVERSATION, tools=[WEATHER])
    assert str(info.value) == (
        f"the chat template of {tokenizer.name_or_path} does not render the `tools` list (function schemas) or the "
        "`tool_calls` of assistant turns, so they would be neither seen nor trained: set model.chat_template (or "
        "--chat-template) to a template FILE that renders them, e.g. examples/chatml_tools.jinja for ChatML models "
        "such as SmolLM2")
    with pytest.raises(TemplateError, match="does not render reasoning .`reasoning_content`, `thinking` or <think>"):
        tokenize_conversation(tokenizer, REASONING[:1] + REASONING[3:])


# Qwen3's rule: reasoning is rendered only for assistant turns after the last user turn.
DROPPING = ("{%- set ns = namespace(last=0) -%}{%- for m in messages -%}{%- if m.role == 'user' -%}"
            "{%- set ns.last = loop.index0 -%}{%- endif -%}{%- endfor -%}"
            "{%- for m in messages -%}{{- '<|im_start|>' + m.role + '\\n' -}}"
            "{%- if m.role == 'assistant' and m.reasoning_content and loop.index0 > ns.last -%}"
            "{{- '<think>\\n' + m.reasoning_content + '\\n</think>\\n\\n' -}}{%- endif -%}"
            "{{- m.content + '<|im_end|>\\n' -}}{%- endfor -%}"
            "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}")
TWO_THOUGHTS = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4.", "reasoning_content": "add"},
                {"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "6.", "reasoning_content": "sum"}]


def test_template_dropping_earlier_reasoning_is_refused_when_that_reasoning_would_train(tokenizer, tmp_path):
    original = tokenizer.chat_template
    (tmp_path / "qwen3ish.jinja").write_text(DROPPING)
    use_chat_template(tokenizer, str(tmp_path / "qwen3ish.jinja"))
    try:
        with pytest.raises(TemplateError) as info:
            tokenize_conversation(tokenizer, TWO_THOUGHTS)
        assert str(info.value).startswith(f"the chat template of {tmp_path / 'qwen3ish.jinja'} drops the reasoning "
                                          "of assistant message 2 once a later user turn follows")
        assert "set data.train_on: last" in str(info.value)
        head = "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
        middle = "\n<|im_start|>user\n3+3?<|im_end|>\n<|im_start|>assistant\n"
        last = tokenize_conversation(tokenizer, TWO_THOUGHTS, "last")
        assert last.text == head + "4.<|im_end|>" + middle + "<think>\nsum\n</think>\n\n6.<|im_end|>\n"
        pieces = [(head + "4.<|im_end|>" + middle, False), ("<think>\nsum\n</think>\n", True), ("\n", True),
                  ("6.<|im_end|>", True), ("\n", False)]
        assert (last.input_ids, last.labels) == expected(tokenizer, pieces)[1:]
        masked = tokenize_conversation(tokenizer, TWO_THOUGHTS, train_on_reasoning=False)
        pieces = [(head, False), ("4.<|im_end|>", True), (middle + "<think>\nsum\n</think>\n", False),
                  ("\n", False), ("6.<|im_end|>", True), ("\n", False)]
        assert (masked.input_ids, masked.labels) == expected(tokenizer, pieces)[1:]
    finally:
        tokenizer.chat_template = original


def test_template_reading_thinking_gets_the_reasoning_under_that_key(tokenizer):
    original = tokenizer.chat_template
    tokenizer.chat_template = ("{%- for m in messages -%}{{- '<|im_start|>' + m.role + '\\n' -}}{%- if m.thinking -%}"
                               "{{- '[' + m.thinking + ']' -}}{%- endif -%}{{- m.content + '<|im_end|>\\n' -}}"
                               "{%- endfor -%}{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
                               "{%- endif -%}")
    try:
        tok = tokenize_conversation(tokenizer, TWO_THOUGHTS[:2], train_on_reasoning=False)
        assert tok.text == "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n[add]4.<|im_end|>\n"
        assert [tok.text[a:b] for a, b in tok.spans] == ["4.<|im_end|>"]
    finally:
        tokenizer.chat_template = original


def test_chat_template_option_reads_a_file_or_takes_the_text(tmp_path):
    assert read_chat_template(str(TEMPLATE)) == TEMPLATE.read_text()
    assert read_chat_template("{{ messages }}") == "{{ messages }}"
    with pytest.raises(UserError) as info:
        read_chat_template(str(tmp_path / "missing.jinja"))
    assert info.value.format() == (f"{tmp_path / 'missing.jinja'}: chat template file not found: give a Jinja file "
                                   "(e.g. examples/chatml_tools.jinja) or the template text itself")


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4."}, {"role": "user", "content": "3+3?"}],
])
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_shipped_template_renders_plain_chats_as_smollm2_does(tokenizer, messages, add_generation_prompt):
    own = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    shipped = tokenizer.apply_chat_template(messages, chat_template=TEMPLATE.read_text(), tokenize=False,
                                            add_generation_prompt=add_generation_prompt)
    assert shipped == own
