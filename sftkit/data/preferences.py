"""Preference pairs for DPO: read (any file type `iter_rows` reads), validate, tokenise with response labels.

Row schemas (`data.format`, `auto` detects per row):
  `prompt`    `prompt` (string or message list) + `chosen` + `rejected`;
  `messages`  `messages` (the conversation so far, ending with a user turn) + `chosen` + `rejected`;
  `implicit`  only `chosen` and `rejected`, each a whole conversation; they must agree up to the final turn.
`chosen`/`rejected` are a string, one assistant message, or a message list that is either that single
assistant turn or the whole conversation starting with the prompt. A response is exactly one final assistant
turn: DPO compares the log-probability of two replies to the same prompt.

Bad rows follow `on_bad_row` like SFT data: `error` raises `file:line: ...`, `skip` counts the reason in the
shared `DataReport` and keeps the row for the rejects file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sftkit.data.dataset import DataReport, TokenizedExample, read_rows
from sftkit.data.formats import validate_messages
from sftkit.data.rows import RowError
from sftkit.data.rows import Row
from sftkit.data.chat_labels import IGNORE_INDEX, TemplateError, ensure_chat_template, tokenize_conversation
from sftkit.errors import UserError

PREFERENCE_FORMATS = ("prompt", "messages", "implicit")


@dataclass
class PreferencePair:
    """A prompt (messages ending with a user turn) and two replies to it."""

    prompt: list[dict]
    chosen: str
    rejected: str
    source: str
    line: int
    raw: dict = field(default_factory=dict)

    def conversations(self) -> tuple[list[dict], list[dict]]:
        return ([*self.prompt, {"role": "assistant", "content": self.chosen}],
                [*self.prompt, {"role": "assistant", "content": self.rejected}])


@dataclass
class TokenizedPair:
    chosen: TokenizedExample
    rejected: TokenizedExample
    source: str
    line: int


def detect_preference_format(data: dict) -> str:
    if "messages" in data:
        return "messages"
    if "prompt" in data:
        return "prompt"
    return "implicit"


def _decode_csv_cell(value, source: str):
    """CSV cells are text; a cell holding a JSON message (list) is decoded (readers.py only does `prompt`)."""
    if isinstance(value, str) and source.endswith(".csv") and value.lstrip()[:1] in "[{":
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return value
        items = decoded if isinstance(decoded, list) else [decoded]
        if items and all(isinstance(m, dict) and "role" in m for m in items):
            return decoded
    return value


def _message_list(value, name: str) -> list[dict]:
    out = []
    for i, m in enumerate(value, start=1):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            got = ", ".join(sorted(map(str, m))) if isinstance(m, dict) else type(m).__name__
            raise RowError("missing_field", f"`{name}` message {i} needs `role` and `content` (got {got})")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _response(value, prompt: list[dict], name: str) -> str:
    """The text of one final assistant turn given as a string, a message, or a message list."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RowError("bad_type", f"`{name}` must be a string or a message list, got {type(value).__name__}")
    messages = _message_list(value, name)
    if len(messages) > 1 and messages[:len(prompt)] == prompt:
        messages = messages[len(prompt):]  # the whole conversation was given: keep the reply
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        raise RowError("not_final_turn", f"`{name}` must be one assistant reply (a string, an assistant message, "
                       "or the whole conversation starting with the prompt); got "
                       f"{len(messages)} message(s) with roles {[m['role'] for m in messages]}")
    return messages[0]["content"]


def to_pair(row: Row, fmt: str = "auto") -> PreferencePair:
    """Convert and validate one row. Raises RowError."""
    data = {k: _decode_csv_cell(v, row.source) for k, v in row.data.items()}
    fmt = detect_preference_format(data) if fmt == "auto" else fmt
    if fmt not in PREFERENCE_FORMATS:
        raise RowError("unknown_format", f"unknown data.format {fmt!r}; use auto, {', '.join(PREFERENCE_FORMATS)}")
    missing = [k for k in ({"prompt": ("prompt",), "messages": ("messages",)}.get(fmt, ()) + ("chosen", "rejected"))
               if k not in data]
    if missing:
        keys = ", ".join(sorted(map(str, data))) or "none"
        raise RowError("missing_field", f"missing {', '.join(f'`{k}`' for k in missing)} (got {keys}); a preference "
                       "row needs `prompt` or `messages`, plus `chosen` and `rejected`")
    if fmt == "implicit":
        if not isinstance(data["chosen"], list) or not isinstance(data["rejected"], list):
            raise RowError("bad_type", "without `prompt`/`messages`, `chosen` and `rejected` must be whole "
                           "conversations (message lists) sharing every turn but the last")
        chosen, rejected = _message_list(data["chosen"], "chosen"), _message_list(data["rejected"], "rejected")
        if chosen[:-1] != rejected[:-1]:
            raise RowError("prompt_mismatch", "`chosen` and `rejected` differ before their final turn: they must "
                           "answer the same conversation")
        prompt = chosen[:-1]
    else:
        raw_prompt = data[fmt]
        if isinstance(raw_prompt, str):
            prompt = [{"role": "user", "content": raw_prompt}]
        elif isinstance(raw_prompt, list):
            prompt = _message_list(raw_prompt, fmt)
        else:
            raise RowError("bad_type", f"`{fmt}` must be a string or a message list, got {type(raw_prompt).__name__}")
    chosen_text = _response(data["chosen"], prompt, "chosen")
    rejected_text = _response(data["rejected"], prompt, "rejected")
    pair = PreferencePair(prompt, chosen_text, rejected_text, row.source, row.line, row.data)
    for conversation in pair.conversations():
        validate_messages(conversation)
    if not prompt or prompt[-1]["role"] != "user":
        raise RowError("prompt_not_user_last", "the prompt must end with a user turn (the replies answer it)")
    if chosen_text.strip() == rejected_text.strip():
        raise RowError("identical_responses", "`chosen` and `rejected` are the same text: the pair carries no "
                       "preference; fix or remove it")
    return pair


def load_preferences(specs: str | list[str], fmt: str = "auto", on_bad_row: str = "error",
                     report: DataReport | None = None) -> tuple[list[PreferencePair], DataReport]:
    """Read and validate every row of every source (files, directories, `bigbench:`, hub ids).

    Raises:
        UserError: a bad row with `on_bad_row="error"`, or no usable pair at all.
    """
    if fmt != "auto" and fmt not in PREFERENCE_FORMATS:
        raise UserError(f"unknown preference format {fmt!r}: use auto, {', '.join(PREFERENCE_FORMATS)}")
    report = report or DataReport()
    pairs = []
    for row in read_rows(specs, on_bad_row, report):
        try:
            pair = to_pair(row, fmt)
        except RowError as exc:
            report.bad_row(on_bad_row, exc.reason, str(exc), row.source, row.line, row.data)
            continue
        report.formats[detect_preference_format(row.data) if fmt == "auto" else fmt] += 1
        pairs.append(pair)
    if not pairs:
        raise UserError(f"no usable preference pairs in {specs} ({report.rows_read} read, {report.rows_skipped} "
                        f"skipped: {dict(report.skipped)}); fix the data")
    return pairs, report


def tokenize_pairs(tokenizer, pairs: list[PreferencePair], max_length: int, overlong: str = "truncate",
                   report: DataReport | None = None) -> tuple[list[TokenizedPair], DataReport]:
    """Tokenise prompt+chosen and prompt+rejected; labels mark the final reply and its end-of-turn token only.

    The length policy is SFT's, applied per pair: `truncate` keeps the first `max_length` tokens of each
    sequence, `drop` removes the pair (reason `too_long`). A pair with a side left without any reply token is
    removed (reason `no_trained_tokens`). `report.truncated` and `report.over_max_length` count pairs.
    """
    if overlong not in ("truncate", "drop"):
        raise UserError(f"unknown overlong policy {overlong!r}: use truncate or drop")
    report = report or DataReport()
    ensure_chat_template(tokenizer)
    out = []
    for pair in pairs:
        sides = []
        for conversation in pair.conversations():
            try:
                tok = tokenize_conversation(tokenizer, conversation, train_on="last")
            except TemplateError as exc:
                raise UserError(str(exc), pair.source, pair.line) from None
            if all(x == IGNORE_INDEX for x in tok.labels):  # a template bug, never silently skipped
                raise UserError(f"the chat template of {getattr(tokenizer, 'name_or_path', 'the tokenizer')} marks "
                                "no assistant token in this conversation; check the template", pair.source, pair.line)
            sides.append((tok.input_ids, tok.labels))
        is_overlong = any(len(ids) > max_length for ids, _ in sides)
        if is_overlong:
            report.over_max_length += 1
            if overlong == "drop":
                longest = max(len(ids) for ids, _ in sides)
                report.reject("too_long", f"{longest} tokens > max_length {max_length}", pair.source, pair.line,
                              pair.raw)
                continue
            sides = [(ids[:max_length], labels[:max_length]) for ids, labels in sides]
        if any(all(x == IGNORE_INDEX for x in labels) for _, labels in sides):
            report.reject("no_trained_tokens", f"a reply has no token within the first {max_length} tokens (the "
                          "prompt fills max_length): raise max_length or shorten the prompt",
                          pair.source, pair.line, pair.raw)
            continue
        report.truncated += is_overlong
        chosen, rejected = (TokenizedExample(ids, labels, pair.source, pair.line) for ids, labels in sides)
        out.append(TokenizedPair(chosen, rejected, pair.source, pair.line))
    return out, report
