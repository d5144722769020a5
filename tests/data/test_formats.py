"""Row schemas -> validated conversations, auto-detected and explicit, with stable reason codes for bad rows."""

from __future__ import annotations

import pytest

from sftkit.data.formats import detect_format, to_messages
from sftkit.data.rows import RowError
from sftkit.data.rows import Row


def row(data: dict, **extra) -> Row:
    return Row(data, "mem.jsonl", 1, extra=extra)


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def system(text):
    return {"role": "system", "content": text}


@pytest.mark.parametrize("data, expected", [
    ({"messages": []}, "messages"),
    ({"conversations": []}, "sharegpt"),
    ({"instruction": "i", "input": "", "output": "o"}, "alpaca"),
    ({"prompt": "p", "completion": "c"}, "prompt_completion"),
    ({"input": "x", "target": "y"}, "bigbench"),
    ({"input": "x", "target_scores": {"y": 1}}, "bigbench"),
    ({"question": "q", "answer": "a"}, None),
])
def test_detect_format(data, expected):
    assert detect_format(data) == expected


def test_messages_with_system_turn_and_extra_keys_dropped():
    data = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi", "name": "u"},
                         {"role": "assistant", "content": "Hello"}], "id": 3}
    assert to_messages(row(data)) == [system("Be brief."), user("Hi"), assistant("Hello")]


def test_sharegpt_roles_map_to_chat_roles():
    data = {"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q1"},
                              {"from": "gpt", "value": "A1"}, {"from": "Human", "value": "Q2"},
                              {"from": "gpt", "value": "A2"}]}
    assert to_messages(row(data)) == [system("S"), user("Q1"), assistant("A1"), user("Q2"), assistant("A2")]


@pytest.mark.parametrize("data, expected", [
    ({"instruction": "Translate", "input": "Hallo", "output": "Hello"},
     [user("Translate\n\nHallo"), assistant("Hello")]),
    ({"instruction": "Say hi", "input": "", "output": "Hi"}, [user("Say hi"), assistant("Hi")]),
    ({"instruction": "Say hi", "output": "Hi", "system": "Be warm."},
     [system("Be warm."), user("Say hi"), assistant("Hi")]),
])
def test_alpaca(data, expected):
    assert to_messages(row(data)) == expected


def test_prompt_completion_strings_and_message_lists():
    assert to_messages(row({"prompt": "2+2?", "completion": "4"})) == [user("2+2?"), assistant("4")]
    data = {"prompt": [system("S"), user("Q")], "completion": [assistant("A")]}
    assert to_messages(row(data)) == [system("S"), user("Q"), assistant("A")]


def test_bigbench_target_list_takes_first_and_honours_task_prefix():
    got = to_messages(row({"input": "1 + 1 =", "target": ["2", "two"]}, task_prefix="Answer briefly.\n"))
    assert got == [user("Answer briefly.\n1 + 1 ="), assistant("2")]


def test_bigbench_target_scores_appends_choices_and_answers_the_best():
    got = to_messages(row({"input": "Sky?", "target_scores": {"green": 0, "blue": 1}}))
    assert got == [user("Sky?\n  choice: green\n  choice: blue"), assistant("blue")]


def test_bigbench_respects_append_choices_false_and_example_prefix():
    got = to_messages(row({"input": "Sky?", "target_scores": {"green": 0, "blue": 1}},
                          append_choices_to_input=False, example_input_prefix="Q: "))
    assert got == [user("Q: Sky?"), assistant("blue")]


def test_explicit_format_overrides_detection():
    # A row with both shapes: explicit `prompt_completion` must not read `messages`.
    data = {"messages": [user("M"), assistant("N")], "prompt": "P", "completion": "C"}
    assert to_messages(row(data), "prompt_completion") == [user("P"), assistant("C")]
    with pytest.raises(RowError) as info:
        to_messages(row({"prompt": "P", "completion": "C"}), "alpaca")
    assert (info.value.reason, str(info.value)) == ("missing_field",
                                                    "missing `instruction` (format alpaca needs instruction, output)")


@pytest.mark.parametrize("data, reason, message", [
    ({"question": "q", "answer": "a"}, "unknown_schema",
     "unrecognised fields (answer, question); expected `messages` (role/content list), `conversations` "
     "(ShareGPT from/value), `instruction`+`output` (Alpaca), `prompt`+`completion`, or "
     "`input`+`target`/`target_scores` (BIG-bench)"),
    ({"messages": [user("Q"), {"role": "assistant"}]}, "missing_field",
     "message 2 needs `role` and `content` (got role)"),
    ({"conversations": [{"from": "human", "value": "Q"}, {"from": "robot", "value": "A"}]}, "unknown_role",
     "turn 2 has unknown `from` 'robot'; use human, gpt or system"),
    ({"messages": [user("Q"), {"role": "bot", "content": "A"}]}, "unknown_role",
     "message 2 has unknown role 'bot'; use system, user or assistant"),
    ({"messages": [user("Q"), assistant("  ")]}, "empty_assistant",
     "message 2 (assistant) is empty: give the reply or drop the row"),
    ({"messages": [user("Q"), assistant("A"), user("Q2")]}, "no_final_assistant",
     "conversation does not end with an assistant turn: add the reply or remove the trailing turn"),
    ({"messages": [user("Q"), system("S"), assistant("A")]}, "misplaced_system",
     "message 2 is a system turn; only the first message may be system"),
    ({"messages": [system("S"), assistant("Hello!"), user("Q"), assistant("A")]}, "assistant_first",
     "message 2 is an assistant turn; the conversation must open with a user turn (after an optional system "
     "turn): drop the opening reply or add the user turn"),
    ({"messages": [system("S"), assistant("A")]}, "no_user_turn", "conversation has no user turn"),
    ({"messages": []}, "empty_conversation", "conversation has no messages"),
    ({"messages": [user("Q"), {"role": "assistant", "content": None}]}, "bad_type",
     "message 2 content must be a string, got NoneType"),
    ({"instruction": "", "output": "o"}, "empty_user", "message 1 (user) is empty"),
    ({"input": "x", "target": []}, "missing_field",
     "BIG-bench example has neither a non-empty `target` nor `target_scores`"),
])
def test_bad_rows_have_reason_and_fix(data, reason, message):
    with pytest.raises(RowError) as info:
        to_messages(row(data))
    assert (info.value.reason, str(info.value)) == (reason, message)
