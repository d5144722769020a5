"""Chat templates: reading one from a file (`model.chat_template: FILE`, `--chat-template FILE`), naming it in
errors, and finding out what it can render (tools, tool calls, tool results, reasoning) before any label is
derived from it.

A template that drops a feature the data uses would silently train on less than the data holds (SmolLM2's
own template prints `content` only, so a tool call would vanish), so `require_features` refuses it with a
message that names the template and the fix.
"""

from __future__ import annotations

from pathlib import Path

from sftkit.errors import UserError

TOOL_TEMPLATE_HINT = "examples/chatml_tools.jinja for ChatML models such as SmolLM2"
_PROBE_QUESTION = "sftkit probe question"
_PROBE_TOOL = {"type": "function", "function": {
    "name": "sftkit_probe_tool", "description": "sftkit probe description",
    "parameters": {"type": "object", "properties": {"sftkit_probe_arg": {"type": "string"}}}}}
_PROBE_CALL = {"id": "call_1", "type": "function",
               "function": {"name": "sftkit_probe_tool", "arguments": {"sftkit_probe_arg": "sftkit_probe_value"}}}
_PROBE_RESULT = "sftkit probe result"
_PROBE_REASONING = "sftkit probe reasoning"
_REASONING_KEYS = ("reasoning_content", "thinking")
_features: dict[str, dict] = {}  # template text -> what it renders
_names: dict[str, str] = {}  # template text -> the file it was read from


class TemplateError(ValueError):
    """The chat template cannot be used to derive labels for this conversation."""


def read_chat_template(value: str) -> str:
    """The template text of a `chat_template` option: the Jinja text itself, or a file holding it."""
    if "{{" in value or "{%" in value:
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise UserError("chat template file not found: give a Jinja file (e.g. examples/chatml_tools.jinja) or "
                        "the template text itself", source=value)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the chat template: {exc}", source=value) from None


def use_chat_template(tokenizer, value: str | None) -> None:
    """Give `tokenizer` the template of a `chat_template` option (nothing when None); errors name its file."""
    if not value:
        return
    tokenizer.chat_template = read_chat_template(value)
    _names[_key(tokenizer.chat_template)] = value if tokenizer.chat_template != value else "model.chat_template"


def template_name(tokenizer) -> str:
    """How errors name the tokenizer's template: the file it was read from, or the model it came with."""
    given = _names.get(_key(getattr(tokenizer, "chat_template", None)))
    return given or getattr(tokenizer, "name_or_path", None) or "the tokenizer"


def _key(template) -> str:
    return template if isinstance(template, str) else repr(template)  # a dict of named templates


def _render(tokenizer, messages: list[dict], tools=None, add_generation_prompt=False) -> str | None:
    import jinja2

    try:
        return tokenizer.apply_chat_template(messages, tools=tools, tokenize=False,
                                             add_generation_prompt=add_generation_prompt)
    except (jinja2.TemplateError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _probe(tokenizer) -> dict:
    """Which features the template renders (cached per template text)."""
    text = _key(tokenizer.chat_template)
    if text in _features:
        return _features[text]
    user = {"role": "user", "content": _PROBE_QUESTION}
    call = {"role": "assistant", "content": "", "tool_calls": [_PROBE_CALL]}
    result = {"role": "tool", "content": _PROBE_RESULT, "tool_call_id": "call_1", "name": "sftkit_probe_tool"}
    listed = _render(tokenizer, [user], [_PROBE_TOOL], add_generation_prompt=True) or ""
    called = _render(tokenizer, [user, call], [_PROBE_TOOL]) or ""
    after_question = called.split(_PROBE_QUESTION, 1)[-1] if _PROBE_QUESTION in called else ""
    answered = _render(tokenizer, [user, call, result], [_PROBE_TOOL]) or ""
    reasoning_key = None
    for key in _REASONING_KEYS:
        reply = {"role": "assistant", "content": "sftkit probe answer", key: _PROBE_REASONING}
        if _PROBE_REASONING in (_render(tokenizer, [user, reply]) or ""):
            reasoning_key = key
            break
    _features[text] = {
        "tools": "sftkit_probe_tool" in listed,
        "tool_calls": "sftkit_probe_tool" in after_question and "sftkit_probe_value" in after_question,
        "tool_results": _PROBE_RESULT in answered,
        "reasoning_key": reasoning_key,
    }
    return _features[text]


def reasoning_key(tokenizer) -> str | None:
    """The message key the template reads reasoning from (`reasoning_content` or `thinking`), or None."""
    return _probe(tokenizer)["reasoning_key"]


_WHAT = {"tools": "the `tools` list (function schemas)", "tool_calls": "the `tool_calls` of assistant turns",
         "tool_results": "`tool` messages (tool results)", "reasoning": "reasoning (`reasoning_content`, "
         "`thinking` or <think> blocks)"}


def require_features(tokenizer, messages: list[dict], tools: list[dict] | None) -> None:
    """Raise TemplateError when the conversation uses a feature the tokenizer's template does not render."""
    wanted = []
    if tools:
        wanted.append("tools")
    if any(m.get("tool_calls") for m in messages):
        wanted.append("tool_calls")
    if any(m["role"] == "tool" for m in messages):
        wanted.append("tool_results")
    if any(m.get("reasoning_content") for m in messages):
        wanted.append("reasoning")
    if not wanted:
        return
    features = _probe(tokenizer)
    missing = [w for w in wanted if not (features["reasoning_key"] if w == "reasoning" else features[w])]
    if missing:
        raise TemplateError(f"the chat template of {template_name(tokenizer)} does not render "
                            f"{' or '.join(_WHAT[m] for m in missing)}, so they would be neither seen nor "
                            "trained: set model.chat_template (or --chat-template) to a template FILE that "
                            f"renders them, e.g. {TOOL_TEMPLATE_HINT}")


def template_messages(tokenizer, messages: list[dict]) -> list[dict]:
    """`messages` as the template reads them: reasoning under the key it uses (`thinking` for some)."""
    if not any("reasoning_content" in m for m in messages):
        return messages
    key = reasoning_key(tokenizer)
    if key in (None, "reasoning_content"):
        return messages
    return [{(key if k == "reasoning_content" else k): v for k, v in m.items()} for m in messages]
