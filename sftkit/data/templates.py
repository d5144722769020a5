"""Chat-template rendering with labels derived from the template itself.

For each assistant turn i, the template renders the conversation up to turn i with a generation prompt
(P_i) and up to and including turn i (Q_i). Both must be prefixes of the full rendering; otherwise the
template is not prefix-stable and labels cannot be derived safely, so we fail instead of guessing. The
trained span of turn i runs from the end of P_i through the first special token after the reply (the
template's end-of-turn token, e.g. `<|im_end|>`), so the model learns to stop, and template whitespace
after that token stays untrained. Tokens are labelled by character offsets of one tokenisation of the
full text, so there is no double BOS and no boundary re-tokenisation drift.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

IGNORE_INDEX = -100

# Used only when a tokenizer ships no chat template; a warning says so.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class TemplateError(ValueError):
    """The chat template cannot be used to derive labels for this conversation."""


@dataclass
class Tokenized:
    input_ids: list[int]
    labels: list[int]
    text: str
    spans: list[tuple[int, int]]  # character spans of trained text in `text`

    @property
    def num_trained_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


def ensure_chat_template(tokenizer) -> None:
    """Give the tokenizer a ChatML template if it has none (with a warning)."""
    if not getattr(tokenizer, "chat_template", None):
        warnings.warn(f"tokenizer {tokenizer.name_or_path!r} has no chat template; using ChatML", stacklevel=2)
        tokenizer.chat_template = CHATML_TEMPLATE


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def _special_strings(tokenizer) -> list[str]:
    specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for token in getattr(tokenizer, "added_tokens_decoder", {}).values():
        if getattr(token, "special", False):
            specials.add(str(token))
    return sorted((s for s in specials if s), key=len, reverse=True)


def assistant_spans(tokenizer, messages: list[dict], train_on: str = "all") -> tuple[str, list[tuple[int, int]]]:
    """The full rendering and the character spans to train: each assistant reply plus its end-of-turn token.

    Raises:
        TemplateError: the template is not prefix-stable, or a reply does not appear where it should.
    """
    name = getattr(tokenizer, "name_or_path", "tokenizer")
    full = render(tokenizer, messages)
    specials = _special_strings(tokenizer)
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if train_on == "last":
        turns = turns[-1:]
    spans = []
    for i in turns:
        prompt = render(tokenizer, messages[:i], add_generation_prompt=True)
        upto = render(tokenizer, messages[: i + 1])
        if not full.startswith(prompt) or not full.startswith(upto) or not upto.startswith(prompt):
            raise TemplateError(
                f"the chat template of {name} is not prefix-stable at turn {i + 1} (rendering a conversation "
                "prefix does not give a prefix of the full rendering), so trained tokens cannot be derived "
                "safely; use a tokenizer whose template renders earlier turns identically, or set a fixed "
                "template with model.chat_template"
            )
        start, tail = len(prompt), upto[len(prompt):]
        reply = messages[i]["content"].strip()
        at = tail.find(reply)
        if at < 0:
            raise TemplateError(f"the chat template of {name} changes the text of assistant turn {i + 1}, so "
                                "its tokens cannot be located; check the template")
        after = at + len(reply)
        end = None
        for pos in range(after, len(tail)):
            hit = next((s for s in specials if tail.startswith(s, pos)), None)
            if hit:
                end = pos + len(hit)
                break
        if end is None:  # template closes turns without a special token: train up to trailing whitespace
            end = len(tail.rstrip())
        spans.append((start, start + end))
    return full, spans


def tokenize_conversation(tokenizer, messages: list[dict], train_on: str = "all") -> Tokenized:
    """Token ids of the rendered conversation and labels (-100 outside the assistant spans).

    A token is trained when its first character lies inside a trained span: tokens that begin in the prompt
    are never trained, and the end-of-turn token is always inside.
    """
    full, spans = assistant_spans(tokenizer, messages, train_on)
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    labels = [IGNORE_INDEX] * len(ids)
    span_index = 0
    for t, (s, e) in enumerate(offsets):
        while span_index < len(spans) and s >= spans[span_index][1]:
            span_index += 1
        if span_index < len(spans) and spans[span_index][0] <= s < spans[span_index][1] and e > s:
            labels[t] = ids[t]
    return Tokenized(input_ids=list(ids), labels=labels, text=full, spans=spans)


def trained_segments(tokenizer, input_ids: list[int], labels: list[int]) -> list[str]:
    """Decoded runs of consecutive trained tokens, in order (what `data inspect --json` shows)."""
    segments, current = [], []
    for tok, lab in zip(input_ids, labels):
        if lab != IGNORE_INDEX:
            current.append(tok)
        elif current:
            segments.append(tokenizer.decode(current))
            current = []
    if current:
        segments.append(tokenizer.decode(current))
    return segments
