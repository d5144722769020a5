"""Exact input and label ids of one tool-calling conversation with reasoning, read from every source format
(OpenAI `tool_calls`, the older `function_call`, ShareGPT `function_call` / `observation`) through
`load_conversations` and `tokenize_examples` under the shipped template, for each labelling option.

The ids were checked by hand, token by token (decoded in the comments): the tokens after
`<|im_start|>assistant\\n` through `<|im_end|>` of each assistant turn are trained, never the `\\n` after it."""

from __future__ import annotations

import json

import pytest

from sftkit.data.chat_labels import IGNORE_INDEX
from sftkit.data.dataset import load_conversations, tokenize_examples

SCHEMA = {"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "number"}}}}

# One conversation, four shapes: "1+2?" -> reasoning "Use add." and the call add(a=1) -> result "3" -> "3.".
ROWS = {
    "openai": {"tools": [{"type": "function", "function": SCHEMA}], "messages": [
        {"role": "user", "content": "1+2?"},
        {"role": "assistant", "content": None, "reasoning_content": "Use add.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "3"},
        {"role": "assistant", "content": "3."}]},
    "openai_thinking_inline_think": {"tools": [SCHEMA], "messages": [
        {"role": "user", "content": "1+2?"},
        {"role": "assistant", "content": "<think>Use add.</think>", "tool_calls": [
            {"function": {"name": "add", "arguments": {"a": 1}}}]},
        {"role": "tool", "content": "3"},
        {"role": "assistant", "content": "3."}]},
    "openai_function_call": {"tools": [SCHEMA], "messages": [
        {"role": "user", "content": "1+2?"},
        {"role": "assistant", "content": None, "thinking": "Use add.",
         "function_call": {"name": "add", "arguments": '{"a": 1}'}},
        {"role": "function", "name": "add", "content": "3"},
        {"role": "assistant", "content": "3."}]},
    "sharegpt": {"tools": json.dumps([SCHEMA]), "conversations": [
        {"from": "human", "value": "1+2?"},
        {"from": "gpt", "value": "<think>\nUse add.\n</think>"},
        {"from": "function_call", "value": '{"name": "add", "arguments": {"a": 1}}'},
        {"from": "observation", "value": "3"},
        {"from": "gpt", "value": "3."}]},
}

IDS = [
    # <|im_start|>system\n ... You can call these functions:\n<tools>\n{"name":"add",...}\n</tools>\n ... <|im_end|>\n
    1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712, 8182,
    198, 198, 2683, 416, 946, 623, 3691, 42, 198, 44, 19746, 46, 198, 39428, 1245, 25535, 2104, 14460, 11582,
    1799, 39428, 2058, 25535, 4743, 14460, 17024, 1799, 39428, 81, 1799, 39428, 2058, 25535, 7979, 18, 17859,
    17859, 198, 9617, 19746, 46, 198, 2068, 946, 582, 28, 15482, 351, 2067, 19324, 79, 4350, 46, 198, 39428,
    1245, 1799, 15828, 3945, 28, 476, 24370, 1799, 1662, 2026, 17859, 198, 9617, 19324, 79, 4350, 46, 2, 198,
    1, 4093, 198, 33, 27, 34, 47, 2, 198,  # 96: <|im_start|>user\n1+2?<|im_end|>\n
    1, 520, 9531, 198,  # 102: <|im_start|>assistant\n
    44, 17400, 46, 198, 9801, 803, 30, 198, 9617, 17400, 46, 198, 198,  # 106: <think>\nUse add.\n</think>\n\n
    # 119: <tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call><|im_end|>
    44, 19324, 79, 4350, 46, 198, 39428, 1245, 1799, 476, 2104, 1002, 476, 24370, 1799, 9583, 81, 1799, 216, 33,
    17859, 198, 9617, 19324, 79, 4350, 46, 2,
    198, 1, 19324, 198, 35, 2, 198,  # 147: \n<|im_start|>tool\n3<|im_end|>\n (the result "3" at 151)
    1, 520, 9531, 198, 35, 30, 2, 198,  # 154: <|im_start|>assistant\n3.<|im_end|>\n
]
REASONING = range(106, 119)
CALL = range(119, 147)
RESULT = range(151, 152)
ANSWER = range(158, 161)


def labels(*trained: range) -> list[int]:
    keep = {i for span in trained for i in span}
    return [tid if i in keep else IGNORE_INDEX for i, tid in enumerate(IDS)]


@pytest.mark.parametrize("fmt", list(ROWS))
@pytest.mark.parametrize("options, trained", [
    ({}, (REASONING, CALL, ANSWER)),
    ({"train_on_reasoning": False}, (CALL, ANSWER)),
    ({"train_on_tool_results": True}, (REASONING, CALL, RESULT, ANSWER)),
    ({"train_on_reasoning": False, "train_on_tool_results": True}, (CALL, RESULT, ANSWER)),
    ({"train_on": "last"}, (ANSWER,)),
])
def test_label_ids_per_format_and_option(tool_tokenizer, tmp_path, fmt, options, trained):
    path = tmp_path / f"{fmt}.jsonl"
    path.write_text(json.dumps(ROWS[fmt]) + "\n")
    examples, _ = load_conversations(str(path))
    [tok], _ = tokenize_examples(tool_tokenizer, examples, max_length=len(IDS), **options)
    assert tok.input_ids == IDS
    assert tok.labels == labels(*trained)


def test_trained_ids_decode_to_the_hand_checked_spans(tool_tokenizer):
    decode = tool_tokenizer.decode
    assert decode(IDS[REASONING.start:REASONING.stop]) == "<think>\nUse add.\n</think>\n\n"
    assert decode(IDS[CALL.start:CALL.stop]) == ('<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n'
                                                 "</tool_call><|im_end|>")
    assert decode(IDS[RESULT.start:RESULT.stop]) == "3"
    assert decode(IDS[ANSWER.start:ANSWER.stop]) == "3.<|im_end|>"
    assert decode(IDS[ANSWER.start - 4:ANSWER.start]) == "<|im_start|>assistant\n"
