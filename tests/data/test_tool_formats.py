"""Tool-call and reasoning rows -> normalised messages: every source shape gives the same conversation, and
every inconsistency between calls, results and tools is a bad row with its reason code."""

from __future__ import annotations

import json

import pytest

from sftkit.data.dataset import load_conversations
from sftkit.data.formats import conversation_tools, to_messages
from sftkit.data.rows import Row, RowError

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
NORMALISED = [
    {"role": "system", "content": "Use tools."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "content": '{"temperature": 18}', "tool_call_id": "call_1", "name": "get_weather"},
    {"role": "assistant", "content": "18 degrees."},
]


def row(data: dict, **extra) -> Row:
    return Row(data, "mem.jsonl", 1, extra=extra)


def openai_row() -> dict:
    return {"tools": [WEATHER], "messages": [
        {"role": "system", "content": "Use tools."}, {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 18}'},
        {"role": "assistant", "content": "18 degrees."}]}


def test_openai_messages_normalise_arguments_and_name_the_result():
    data = openai_row()
    assert to_messages(row(data)) == NORMALISED
    assert conversation_tools(row(data)) == [WEATHER]


def test_llama_factory_sharegpt_equals_the_messages_form():
    data = {"system": "Use tools.", "tools": json.dumps([WEATHER["function"]]), "conversations": [
        {"from": "human", "value": "Weather in Paris?"},
        {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Paris"}}'},
        {"from": "observation", "value": '{"temperature": 18}'},
        {"from": "gpt", "value": "18 degrees."}]}
    assert to_messages(row(data)) == to_messages(row(openai_row())) == NORMALISED
    assert conversation_tools(row(data)) == conversation_tools(row(openai_row())) == [WEATHER]


def test_glaive_style_reply_then_call_is_one_assistant_turn():
    data = {"conversations": [
        {"from": "human", "value": "Weather in Paris?"}, {"from": "gpt", "value": "Let me check."},
        {"from": "function_call", "value": '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}'},
        {"from": "observation", "value": "18"}, {"from": "gpt", "value": "18 degrees."}]}
    messages = to_messages(row(data))
    assert messages[1] == {"role": "assistant", "content": "Let me check.", "tool_calls": [CALL]}
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]


def test_legacy_function_call_and_function_role():
    data = {"messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"role": "function", "name": "get_weather", "content": '{"temperature": 18}'},
        {"role": "assistant", "content": "18 degrees."}]}
    assert to_messages(row(data)) == NORMALISED[1:]


def test_parallel_calls_pair_results_by_id_and_order():
    calls = [{"id": "a", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
             {"id": "b", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]
    data = {"messages": [{"role": "user", "content": "Paris and Rome?"},
                         {"role": "assistant", "content": "", "tool_calls": calls},
                         {"role": "tool", "tool_call_id": "b", "content": "20"},
                         {"role": "tool", "content": "18"},
                         {"role": "assistant", "content": "18 and 20."}]}
    messages = to_messages(row(data))
    assert [(m["tool_call_id"], m["content"]) for m in messages[2:4]] == [("b", "20"), ("a", "18")]


@pytest.mark.parametrize("reply", [
    {"role": "assistant", "content": "4.", "reasoning_content": "2 plus 2 is 4"},
    {"role": "assistant", "content": "4.", "thinking": "2 plus 2 is 4"},
    {"role": "assistant", "content": "<think>\n2 plus 2 is 4\n</think>\n\n4."},
])
def test_reasoning_fields_and_inline_think_are_one_shape(reply):
    messages = to_messages(row({"messages": [{"role": "user", "content": "2+2?"}, reply]}))
    assert messages[1] == {"role": "assistant", "content": "4.", "reasoning_content": "2 plus 2 is 4"}


def test_sharegpt_inline_think_becomes_reasoning():
    data = {"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "<think>add</think>4."}]}
    assert to_messages(row(data))[1] == {"role": "assistant", "content": "4.", "reasoning_content": "add"}


def test_file_level_tools_apply_to_rows_without_their_own(tmp_path):
    path = tmp_path / "tools.json"
    rows = [{"messages": openai_row()["messages"]}, {"tools": [], "messages": openai_row()["messages"][1:]}]
    path.write_text(json.dumps({"tools": [WEATHER], "data": rows}))
    examples, _ = load_conversations(str(path))
    assert [ex.tools for ex in examples] == [[WEATHER], None]  # an empty list of its own: no tools
    assert examples[0].messages == NORMALISED


def user_call(calls, *rest, tools=None) -> dict:
    data = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "", "tool_calls": calls},
                         *rest]}
    return {**data, "tools": tools} if tools is not None else data


def fcall(name="get_weather", arguments=None, call_id=None) -> dict:
    call = {"function": {"name": name, "arguments": {"city": "Paris"} if arguments is None else arguments}}
    return {**call, "id": call_id} if call_id else call


REPLY = {"role": "assistant", "content": "A"}


@pytest.mark.parametrize("data, reason, message", [
    (user_call([fcall(arguments='{"city": Paris}')]), "bad_tool_arguments",
     "message 2 call 1 (get_weather) arguments: not valid JSON (Expecting value at column 10); quote keys and "
     'strings with double quotes, e.g. {"city": "Paris"}'),
    (user_call([fcall(arguments="[1]")]), "bad_tool_arguments",
     "message 2 call 1 (get_weather) arguments must be a JSON object, got list"),
    (user_call([{"function": {"arguments": {}}}]), "bad_tool_call", "message 2 call 1 needs a function `name` and "
     "`arguments`"),
    ({"messages": [{"role": "user", "content": "Q"}, {"role": "tool", "content": "9"}, REPLY]}, "orphan_tool_result",
     "message 2 is a tool result that answers no call: the turn before it must be an assistant turn with "
     "`tool_calls` (or drop the result)"),
    (user_call([fcall(call_id="a")], {"role": "tool", "tool_call_id": "a", "content": "1"},
               {"role": "tool", "content": "2"}, REPLY), "orphan_tool_result",
     "message 4 is a tool result that answers no call: the turn before it must be an assistant turn with "
     "`tool_calls` (or drop the result)"),
    (user_call([fcall(call_id="a")], {"role": "tool", "tool_call_id": "b", "content": "1"}, REPLY),
     "tool_call_id_mismatch", "message 3: tool_call_id 'b' matches no open call (open: a); use the `id` of the "
     "call it answers"),
    (user_call([fcall("get_time")], tools=[WEATHER]), "unknown_tool",
     "message 2 calls 'get_time', which is not in the row's `tools` (get_weather): fix the name or add its schema"),
    (user_call([fcall(), fcall()], {"role": "tool", "content": "1"}, REPLY), "unanswered_tool_call",
     "message 2 calls get_weather but no tool result answers it before message 4: add a `tool` message per call"),
    (user_call([fcall()], tools="[{"), "bad_tools",
     "`tools`: not valid JSON (Expecting property name enclosed in double quotes at column 3); quote keys and "
     'strings with double quotes, e.g. {"city": "Paris"}'),
    (user_call([fcall()], tools=[{"description": "x"}]), "bad_tools",
     'tool 1 of `tools` needs a function `name` (a schema such as {"type": "function", "function": {"name": ..., '
     '"parameters": {...}}})'),
    ({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "<think>hmm"}]},
     "unclosed_think", "message 2 opens a <think> block that never closes: add </think>"),
    ({"messages": [{"role": "user", "content": "Q"},
                   {"role": "assistant", "content": "A", "reasoning_content": "r", "thinking": "t"}]},
     "bad_reasoning", "message 2 has both `reasoning_content` and `thinking`: keep one"),
    ({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "", "reasoning_content": "r"}]},
     "empty_assistant", "message 2 (assistant) is empty: give the reply or drop the row"),
])
def test_bad_tool_rows_have_reason_and_fix(data, reason, message):
    with pytest.raises(RowError) as info:
        to_messages(row(data))
    assert (info.value.reason, str(info.value)) == (reason, message)


def test_skip_bad_rows_counts_tool_problems_by_reason(tmp_path):
    good = openai_row()
    bad_id = user_call([fcall(call_id="a")], {"role": "tool", "tool_call_id": "b", "content": "1"}, REPLY)
    unknown = user_call([fcall("get_time")], tools=[WEATHER])
    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (good, bad_id, unknown, good)) + "\n")
    examples, report = load_conversations(str(path), on_bad_row="skip")
    assert [ex.line for ex in examples] == [1, 4]
    assert dict(report.skipped) == {"tool_call_id_mismatch": 1, "unknown_tool": 1}
    assert [(r["line"], r["reason"]) for r in report.rejects] == [(2, "tool_call_id_mismatch"), (3, "unknown_tool")]
