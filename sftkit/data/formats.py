"""Row schemas -> chat messages: OpenAI messages, ShareGPT, Alpaca, prompt/completion, BIG-bench examples.

A conversation is a list of `{"role": "system"|"user"|"assistant", "content": str}` that ends with an
assistant turn. Every check raises `RowError` with a short reason code (for counting skipped rows) and a
message that says how to fix the row.
"""

from __future__ import annotations

from sftkit.data import bigbench
from sftkit.data.rows import Row, RowError

FORMATS = ("messages", "sharegpt", "alpaca", "prompt_completion", "bigbench")
ROLES = ("system", "user", "assistant")
_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                   "assistant": "assistant", "chatgpt": "assistant", "model": "assistant"}


def detect_format(data: dict) -> str | None:
    """The schema a row looks like, or None."""
    if isinstance(data.get("messages"), list):
        return "messages"
    if isinstance(data.get("conversations"), list):
        return "sharegpt"
    if "instruction" in data and "output" in data:
        return "alpaca"
    if "prompt" in data and "completion" in data:
        return "prompt_completion"
    if "input" in data and ("target" in data or "target_scores" in data):
        return "bigbench"
    return None


def describe_expected() -> str:
    return ("`messages` (role/content list), `conversations` (ShareGPT from/value), `instruction`+`output` "
            "(Alpaca), `prompt`+`completion`, or `input`+`target`/`target_scores` (BIG-bench)")


def to_messages(row: Row, fmt: str = "auto") -> list[dict]:
    """Convert and validate one row. Raises RowError."""
    data = row.data
    detected = detect_format(data)
    if fmt == "auto":
        fmt = detected
        if fmt is None:
            keys = ", ".join(sorted(map(str, data))) or "none"
            raise RowError("unknown_schema", f"unrecognised fields ({keys}); expected {describe_expected()}")
    converter = _CONVERTERS.get(fmt)
    if converter is None:
        raise RowError("unknown_format", f"unknown data.format {fmt!r}; use one of auto, {', '.join(FORMATS)}")
    messages = converter(row)
    validate_messages(messages)
    return messages


def _messages(row: Row) -> list[dict]:
    raw = row.data.get("messages")
    if not isinstance(raw, list):
        raise RowError("missing_field", "missing `messages` list (format messages)")
    out = []
    for i, m in enumerate(raw, start=1):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            got = ", ".join(sorted(m)) if isinstance(m, dict) else type(m).__name__
            raise RowError("missing_field", f"message {i} needs `role` and `content` (got {got})")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _sharegpt(row: Row) -> list[dict]:
    raw = row.data.get("conversations")
    if not isinstance(raw, list):
        raise RowError("missing_field", "missing `conversations` list (format sharegpt)")
    out = []
    for i, m in enumerate(raw, start=1):
        if not isinstance(m, dict) or "from" not in m or "value" not in m:
            got = ", ".join(sorted(m)) if isinstance(m, dict) else type(m).__name__
            raise RowError("missing_field", f"turn {i} needs `from` and `value` (got {got})")
        role = _SHAREGPT_ROLES.get(str(m["from"]).lower())
        if role is None:
            raise RowError("unknown_role", f"turn {i} has unknown `from` {m['from']!r}; use human, gpt or system")
        out.append({"role": role, "content": m["value"]})
    return out


def _alpaca(row: Row) -> list[dict]:
    data = row.data
    for key in ("instruction", "output"):
        if key not in data:
            raise RowError("missing_field", f"missing `{key}` (format alpaca needs instruction, output)")
    instruction, extra = data["instruction"], data.get("input") or ""
    if not isinstance(instruction, str) or not isinstance(extra, str):
        raise RowError("bad_type", "`instruction` and `input` must be strings")
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": data["output"]}]
    if isinstance(data.get("system"), str) and data["system"].strip():
        messages.insert(0, {"role": "system", "content": data["system"]})
    return messages


def _prompt_completion(row: Row) -> list[dict]:
    data = row.data
    for key in ("prompt", "completion"):
        if key not in data:
            raise RowError("missing_field", f"missing `{key}` (format prompt_completion needs prompt, completion)")
    prompt, completion = data["prompt"], data["completion"]
    head = _messages(Row({"messages": prompt}, row.source, row.line)) if isinstance(prompt, list) else \
        [{"role": "user", "content": prompt}]
    tail = _messages(Row({"messages": completion}, row.source, row.line)) if isinstance(completion, list) else \
        [{"role": "assistant", "content": completion}]
    return head + tail


def _bigbench(row: Row) -> list[dict]:
    if "input" not in row.data:
        raise RowError("missing_field", "missing `input` (format bigbench)")
    return [{"role": "user", "content": bigbench.chat_prompt(row.data, row.extra)},
            {"role": "assistant", "content": bigbench.reference_answer(row.data)}]


_CONVERTERS = {"messages": _messages, "sharegpt": _sharegpt, "alpaca": _alpaca,
               "prompt_completion": _prompt_completion, "bigbench": _bigbench}


def validate_messages(messages: list[dict]) -> None:
    """Roles known, contents strings, non-empty user/assistant turns, system only first, opens with a user turn
    (after an optional system turn), ends with an assistant turn."""
    if not messages:
        raise RowError("empty_conversation", "conversation has no messages")
    for i, m in enumerate(messages, start=1):
        if m["role"] not in ROLES:
            raise RowError("unknown_role", f"message {i} has unknown role {m['role']!r}; use system, user or assistant")
        if not isinstance(m["content"], str):
            raise RowError("bad_type", f"message {i} content must be a string, got {type(m['content']).__name__}")
        if m["role"] == "system" and i != 1:
            raise RowError("misplaced_system", f"message {i} is a system turn; only the first message may be system")
        if m["role"] == "assistant" and not m["content"].strip():
            raise RowError("empty_assistant", f"message {i} (assistant) is empty: give the reply or drop the row")
        if m["role"] == "user" and not m["content"].strip():
            raise RowError("empty_user", f"message {i} (user) is empty")
    if not any(m["role"] == "user" for m in messages):
        raise RowError("no_user_turn", "conversation has no user turn")
    first = 2 if messages[0]["role"] == "system" else 1
    # Chat templates render an assistant opening differently (or refuse it), so its labels cannot be derived.
    if messages[first - 1]["role"] != "user":
        raise RowError("assistant_first", f"message {first} is an assistant turn; the conversation must open with "
                       "a user turn (after an optional system turn): drop the opening reply or add the user turn")
    if messages[-1]["role"] != "assistant":
        raise RowError("no_final_assistant", "conversation does not end with an assistant turn: add the reply "
                       "or remove the trailing turn")
