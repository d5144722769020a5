"""The tool-call task: does the model call the right function with the right arguments?

Items come from held-out conversations: one per assistant turn that makes tool calls, the turns before it
(earlier results included) as the prompt and the row's `tools` rendered by the chat template. A reply is
parsed for calls in the `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` form (Hermes, Qwen, the
shipped examples/chatml_tools.jinja), or as a bare JSON call or list of calls (Llama 3.1 style), after any
`</think>`. Per item (each 0 or 1):

    valid_call   at least one call, every call well-formed JSON, naming a tool of the item's `tools`, with
                 arguments an object that has every required parameter and only declared ones
    name_match   the called function names equal the reference's (as a multiset: order does not matter)
    exact_call   names and arguments equal the reference's, arguments compared as JSON values (key order,
                 call order and 2 vs 2.0 do not matter; "2" vs 2 and true vs 1 do)
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

TOOL_CALL_METRICS = ("valid_call", "name_match", "exact_call")
_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)


@dataclass
class ToolCallItem:
    """The prompt (every turn before the reference turn), its tools, and the reference assistant turn."""

    messages: list[dict]
    tools: list[dict] | None
    reference: dict  # {"role": "assistant", "content", "tool_calls": [...]}
    source: str
    line: int


def tool_call_items(messages: list[dict], tools: list[dict] | None, source: str, line: int) -> list[ToolCallItem]:
    """One item per assistant turn of the conversation that makes tool calls."""
    return [ToolCallItem(messages[:i], tools, m, source, line) for i, m in enumerate(messages)
            if m["role"] == "assistant" and m.get("tool_calls")]


def merged_tools(*tool_lists: list[dict] | None) -> list[dict] | None:
    """The union of several `tools` lists by function name, first occurrence kept (few-shot prompts)."""
    seen, out = set(), []
    for tools in tool_lists:
        for tool in tools or []:
            if tool["function"]["name"] not in seen:
                seen.add(tool["function"]["name"])
                out.append(tool)
    return out or None


def parse_tool_calls(text: str) -> tuple[list[tuple[str, object]], list[str]]:
    """(calls as (name, arguments), problems) found in a reply; no calls and no problems for plain text."""
    text = text.rsplit("</think>", 1)[-1]
    blocks = _BLOCK.findall(text)
    if not blocks:
        stripped = text.strip()
        if not stripped.startswith(("{", "[")):
            return [], []
        blocks = [stripped]
    calls, problems = [], []
    for block in blocks:
        try:
            value = json.loads(block)
        except json.JSONDecodeError as exc:
            problems.append(f"not valid JSON ({exc.msg})")
            continue
        for call in value if isinstance(value, list) else [value]:
            name = call.get("name") if isinstance(call, dict) else None
            if not isinstance(name, str):
                problems.append("a call without a function `name`")
                continue
            arguments = call.get("arguments", call.get("parameters"))
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except json.JSONDecodeError:
                    pass
            calls.append((name, arguments))
    return calls, problems


def _schema_problem(name: str, arguments, tools: list[dict] | None) -> str | None:
    if not isinstance(arguments, dict):
        return f"{name}: arguments are not a JSON object"
    if tools is None:
        return None
    schema = next((t["function"] for t in tools if t["function"]["name"] == name), None)
    if schema is None:
        return f"unknown tool {name!r}"
    parameters = schema.get("parameters") or {}
    declared = parameters.get("properties")
    missing = [k for k in parameters.get("required", []) if k not in arguments]
    extra = [k for k in arguments if declared is not None and k not in declared]
    if missing or extra:
        return f"{name}: " + "; ".join(filter(None, [missing and f"missing {missing}", extra and f"undeclared {extra}"]))
    return None


def _canonical(value):
    """A hashable form equal exactly when two JSON values are equal (objects unordered, 2 == 2.0, true != 1)."""
    if isinstance(value, dict):
        return ("object", tuple(sorted((k, _canonical(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("array", tuple(_canonical(v) for v in value))
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, (int, float)):
        return ("number", float(value))
    return ("string", value)


def score_tool_calls(output: str, reference: dict, tools: list[dict] | None) -> tuple[dict[str, float], dict]:
    """The three metrics for one reply, and what was parsed from it (for the prediction row)."""
    calls, malformed = parse_tool_calls(output)
    problems = malformed + [p for name, args in calls if (p := _schema_problem(name, args, tools))]
    wanted = [(c["function"]["name"], c["function"]["arguments"]) for c in reference["tool_calls"]]
    names = Counter(name for name, _ in calls) == Counter(name for name, _ in wanted)
    exact = not malformed and Counter((n, _canonical(a)) for n, a in calls) == \
        Counter((n, _canonical(a)) for n, a in wanted)
    scores = {"valid_call": float(bool(calls) and not problems), "name_match": float(bool(calls) and names),
              "exact_call": float(exact)}
    return scores, {"calls": [{"name": n, "arguments": a} for n, a in calls], "problems": problems}


def tool_call_predictions(items: list[ToolCallItem], prompts: list[str], outputs: list[str]) -> tuple[dict, list[dict]]:
    """Per-item values of every tool-call metric and the prediction rows."""
    values = {name: [] for name in TOOL_CALL_METRICS}
    rows = []
    for item, prompt, output in zip(items, prompts, outputs):
        scores, parsed = score_tool_calls(output, item.reference, item.tools)
        for name in TOOL_CALL_METRICS:
            values[name].append(scores[name])
        reference = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                     for c in item.reference["tool_calls"]]
        rows.append({"source": item.source, "line": item.line, "prompt": prompt, "output": output,
                     "reference": json.dumps(reference, ensure_ascii=False), **parsed, **scores})
    return values, rows


def run_tool_call_task(model, tokenizer, items: list[ToolCallItem], max_new_tokens: int,
                       batch_size: int) -> tuple[dict, list[dict]]:
    """Generate a reply per item (its tools rendered by the template) and score it; a template that cannot
    render tools stops first with a UserError naming it."""
    from sftkit.data.chat_templates import TemplateError, require_features
    from sftkit.errors import UserError
    from sftkit.generation import generate

    try:
        for item in items:
            require_features(tokenizer, item.messages + [item.reference], item.tools)
    except TemplateError as exc:
        raise UserError(f"{exc} (--chat-template FILE for sftkit eval)", item.source, item.line) from None
    replies = generate(model, tokenizer, [item.messages for item in items], max_new_tokens, batch_size=batch_size,
                       tools=[item.tools for item in items])
    return tool_call_predictions(items, [r.prompt for r in replies], [r.text for r in replies])
