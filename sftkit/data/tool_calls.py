"""Tool calls and reasoning in conversations: the normalised message shapes, the readers of each source shape,
and the checks that a conversation's calls, results and tools fit together.

Normalised shapes (what chat templates take; keys appear only when present, so a plain conversation stays
`{"role", "content"}` only):

    {"role": "assistant", "content": str, "reasoning_content": str,
     "tool_calls": [{"id": str, "type": "function", "function": {"name": str, "arguments": dict}}]}
    {"role": "tool", "content": str, "tool_call_id": str, "name": str}
    tools: [{"type": "function", "function": {"name": str, "description": str, "parameters": {...}}}]

Every problem raises `RowError` with a stable reason code and a message saying how to fix the row.
"""

from __future__ import annotations

import json

from sftkit.data.rows import RowError

REASONING_KEYS = ("reasoning_content", "thinking")
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def _json_value(value, what: str, reason: str):
    """`value` itself, or decoded when it is a JSON string (LLaMA-Factory stores tools and calls as text)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise RowError(reason, f"{what}: not valid JSON ({exc.msg} at column {exc.colno}); quote keys and "
                       "strings with double quotes, e.g. {\"city\": \"Paris\"}") from None


def parse_tools(value) -> list[dict] | None:
    """A row's `tools`: a list (or JSON text of a list) of function schemas, OpenAI-style
    `{"type": "function", "function": {...}}` or bare `{"name", "description", "parameters"}`."""
    if value is None or value == "" or value == []:
        return None
    tools = _json_value(value, "`tools`", "bad_tools")
    if not isinstance(tools, list):
        raise RowError("bad_tools", f"`tools` must be a list of function schemas, got {type(tools).__name__}")
    out = []
    for i, tool in enumerate(tools, start=1):
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise RowError("bad_tools", f"tool {i} of `tools` needs a function `name` (a schema such as "
                           "{\"type\": \"function\", \"function\": {\"name\": ..., \"parameters\": {...}}})")
        out.append({"type": "function", "function": function})
    return out


def tool_names(tools: list[dict] | None) -> list[str]:
    return [t["function"]["name"] for t in tools or []]


def parse_call(raw, where: str) -> dict:
    """One call: `{"id", "type", "function": {"name", "arguments"}}` or a bare `{"name", "arguments"}`
    (`parameters` accepted for `arguments`), arguments an object or JSON text of one."""
    call = _json_value(raw, where, "bad_tool_call")
    function = call.get("function", call) if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
        raise RowError("bad_tool_call", f"{where} needs a function `name` and `arguments`")
    arguments = function.get("arguments", function.get("parameters", {}))
    arguments = _json_value(arguments, f"{where} ({function['name']}) arguments", "bad_tool_arguments")
    if not isinstance(arguments, dict):
        raise RowError("bad_tool_arguments", f"{where} ({function['name']}) arguments must be a JSON object, got "
                       f"{type(arguments).__name__}")
    out = {"type": "function", "function": {"name": function["name"], "arguments": arguments}}
    if isinstance(call.get("id"), str) and call["id"]:
        out["id"] = call["id"]
    return out


def parse_calls(raw, where: str) -> list[dict]:
    """A list of calls (or one call, or JSON text of either)."""
    calls = _json_value(raw, where, "bad_tool_call")
    calls = calls if isinstance(calls, list) else [calls]
    if not calls:
        raise RowError("bad_tool_call", f"{where} has an empty list of tool calls")
    return [parse_call(c, f"{where} call {k}") for k, c in enumerate(calls, start=1)]


def split_reasoning(content: str, where: str) -> tuple[str | None, str]:
    """An inline `<think>...</think>` block opening `content` -> (reasoning, the rest)."""
    text = content.lstrip()
    if not text.startswith(THINK_OPEN):
        return None, content
    end = text.find(THINK_CLOSE)
    if end < 0:
        raise RowError("unclosed_think", f"{where} opens a {THINK_OPEN} block that never closes: add {THINK_CLOSE}")
    return text[len(THINK_OPEN):end].strip(), text[end + len(THINK_CLOSE):].lstrip()


def assistant_message(content, where: str, reasoning=None, tool_calls=None) -> dict:
    """The normalised assistant message; reasoning from the argument or an inline block in `content`."""
    content = "" if content is None and tool_calls else content
    if isinstance(content, str) and reasoning is None:
        reasoning, content = split_reasoning(content, where)
    message = {"role": "assistant", "content": content}
    if reasoning is not None:
        if not isinstance(reasoning, str):
            raise RowError("bad_type", f"{where} reasoning must be a string, got {type(reasoning).__name__}")
        if reasoning.strip():
            message["reasoning_content"] = reasoning
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def tool_message(content, where: str, tool_call_id=None, name=None) -> dict:
    """The normalised tool result; a JSON value (not text) is written as JSON text."""
    if content is not None and not isinstance(content, str):
        content = json.dumps(content, ensure_ascii=False)
    message = {"role": "tool", "content": content}
    if tool_call_id is not None:
        message["tool_call_id"] = str(tool_call_id)
    if isinstance(name, str) and name:
        message["name"] = name
    return message


def reasoning_of(message: dict, where: str):
    """The reasoning an OpenAI-style assistant message carries in `reasoning_content` or `thinking`."""
    given = [k for k in REASONING_KEYS if message.get(k) not in (None, "")]
    if len(given) > 1:
        raise RowError("bad_reasoning", f"{where} has both `reasoning_content` and `thinking`: keep one")
    return message[given[0]] if given else None


def check_tool_flow(messages: list[dict], tools: list[dict] | None) -> None:
    """Calls name tools of the row's `tools` (when it has any); each tool result answers an open call (its
    `tool_call_id`, else the first open one); every call but those of the final turn gets a result before the
    conversation goes on. Calls without ids get `call_N` (N counts calls in the conversation), results get
    the id and name of the call they answer."""
    known = tool_names(tools)
    pending: list[dict] = []
    calling_turn, count = 0, 0
    for i, m in enumerate(messages, start=1):
        if m["role"] == "tool":
            if not pending:
                raise RowError("orphan_tool_result", f"message {i} is a tool result that answers no call: the "
                               "turn before it must be an assistant turn with `tool_calls` (or drop the result)")
            wanted = m.get("tool_call_id")
            match = next((c for c in pending if c["id"] == wanted), None) if wanted else pending[0]
            if match is None:
                open_ids = ", ".join(c["id"] for c in pending)
                raise RowError("tool_call_id_mismatch", f"message {i}: tool_call_id {wanted!r} matches no open "
                               f"call (open: {open_ids}); use the `id` of the call it answers")
            pending.remove(match)
            m["tool_call_id"] = match["id"]
            m.setdefault("name", match["function"]["name"])
            continue
        if pending:
            names = ", ".join(c["function"]["name"] for c in pending)
            raise RowError("unanswered_tool_call", f"message {calling_turn} calls {names} but no tool result "
                           f"answers it before message {i}: add a `tool` message per call")
        for call in m.get("tool_calls") or []:
            count += 1
            name = call["function"]["name"]
            if tools is not None and name not in known:
                raise RowError("unknown_tool", f"message {i} calls {name!r}, which is not in the row's `tools` "
                               f"({', '.join(known)}): fix the name or add its schema")
            call.setdefault("id", f"call_{count}")
            pending.append(call)
            calling_turn = i
