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

import re
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
    """The template's text for `messages`. Raises TemplateError when the template refuses them (many templates
    `raise_exception` on, e.g., non-alternating roles)."""
    import jinja2

    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except (jinja2.TemplateError, ValueError, TypeError) as exc:
        name = getattr(tokenizer, "name_or_path", "tokenizer")
        raise TemplateError(f"the chat template of {name} cannot render this conversation "
                            f"({len(messages)} message(s)): {str(exc).splitlines()[0]}") from None


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
    closing = re.compile("|".join(map(re.escape, specials))) if specials else None  # longest first wins
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if train_on == "last":
        turns = turns[-1:]
    spans = []
    for i in turns:
        prompt = render(tokenizer, messages[:i], add_generation_prompt=True)
        upto = render(tokenizer, messages[: i + 1])
        if not full.startswith(upto):
            raise TemplateError(_unstable(name, i, "the conversation up to this turn renders differently from the "
                                          "start of the full conversation (the template changes earlier turns)",
                                          upto, full))
        if not upto.startswith(prompt):
            raise TemplateError(_unstable(name, i, "the generation prompt (add_generation_prompt) differs from how "
                                          "the template opens an assistant turn", prompt, upto))
        start, tail = len(prompt), upto[len(prompt):]
        reply = messages[i]["content"].strip()
        at = tail.find(reply)
        if at < 0:
            raise TemplateError(f"the chat template of {name} changes the text of assistant message {i + 1}, "
                                "so its tokens cannot be located; check the template")
        hit = closing.search(tail, at + len(reply)) if closing else None
        # Without a special token closing the turn, train up to the turn's trailing whitespace.
        end = hit.end() if hit else len(tail.rstrip())
        spans.append((start, start + end))
    return full, spans


def _unstable(name: str, index: int, what: str, prefix: str, whole: str) -> str:
    at = next((k for k, (a, b) in enumerate(zip(prefix, whole)) if a != b), min(len(prefix), len(whole)))
    return (f"the chat template of {name} is not prefix-stable at message {index + 1}: {what}; first difference "
            f"at character {at}: {prefix[at:at + 30]!r} vs {whole[at:at + 30]!r}. Labels cannot be derived "
            "safely: set model.chat_template to a template whose rendering of the first turns (with "
            "add_generation_prompt before an assistant turn) is the start of the full rendering")


def end_of_turn_token_id(tokenizer) -> int | None:
    """The special token the chat template puts after an assistant reply (`<|im_end|>`, `<|eot_id|>`,
    `<end_of_turn>`): the first special token after the reply, the token training teaches a model to end a
    reply with (see `assistant_spans`). None when the template closes a reply with no special token or cannot
    render a user turn followed by an assistant turn."""
    probe = "sftkit end-of-turn probe"
    try:
        text = render(tokenizer, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": probe}])
    except TemplateError:
        return None
    specials = _special_strings(tokenizer)
    at = text.find(probe)
    if at < 0 or not specials:
        return None
    hit = re.compile("|".join(map(re.escape, specials))).search(text, at + len(probe))
    return tokenizer.convert_tokens_to_ids(hit.group()) if hit else None


def tokenize_conversation(tokenizer, messages: list[dict], train_on: str = "all") -> Tokenized:
    """Token ids of the rendered conversation and labels (-100 outside the assistant spans).

    A token is trained when its first character lies inside a trained span: tokens that begin in the prompt
    are never trained, and the end-of-turn token is always inside.
    """
    full, spans = assistant_spans(tokenizer, messages, train_on)
    try:
        encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:  # slow (Python) tokenizers have no offsets
        raise TemplateError(f"{getattr(tokenizer, 'name_or_path', 'the tokenizer')} is not a fast tokenizer, so "
                            "trained tokens cannot be located; use a model with a tokenizer.json") from None
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
