"""Chat-template rendering with labels derived from the template itself.

For each assistant turn i, the template renders the conversation up to turn i with a generation prompt
(P_i) and up to and including turn i (Q_i). Both must be prefixes of the full rendering; otherwise the
template is not prefix-stable and labels cannot be derived safely, so we fail instead of guessing. The
trained span of turn i runs from the end of P_i through the first special token after the reply (the
template's end-of-turn token, e.g. `<|im_end|>`), so the model learns to stop, and template whitespace
after that token stays untrained. Tokens are labelled by character offsets of one tokenisation of the
full text, so there is no double BOS and no boundary re-tokenisation drift.

Tool calls and reasoning: a turn's span runs through its tool calls (the call is what the model must learn)
to the end-of-turn token; `tool` results are context unless `train_on_tool_results`, which trains each
result's text. With `train_on_reasoning=False` the text a turn's reasoning adds to the rendering (the
reasoning and any markup the template puts around it only when there is reasoning) is cut out of the span.
A template that drops earlier turns' reasoning from the whole conversation (as Qwen3's does) is handled by
dropping that reasoning from the prefixes too, or refused when that reasoning was to be trained.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

from sftkit.data.chat_templates import TemplateError, require_features, template_messages, template_name

IGNORE_INDEX = -100

# Used only when a tokenizer ships no chat template; a warning says so.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


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


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False,
           tools: list[dict] | None = None) -> str:
    """The template's text for `messages` (and the `tools` schemas). Raises TemplateError when the template
    refuses them (many templates `raise_exception` on, e.g., non-alternating roles)."""
    import jinja2

    try:
        return tokenizer.apply_chat_template(template_messages(tokenizer, messages), tools=tools, tokenize=False,
                                             add_generation_prompt=add_generation_prompt)
    except (jinja2.TemplateError, ValueError, TypeError) as exc:
        name = template_name(tokenizer)
        raise TemplateError(f"the chat template of {name} cannot render this conversation "
                            f"({len(messages)} message(s)): {str(exc).splitlines()[0]}") from None


def _special_strings(tokenizer) -> list[str]:
    specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for token in getattr(tokenizer, "added_tokens_decoder", {}).values():
        if getattr(token, "special", False):
            specials.add(str(token))
    return sorted((s for s in specials if s), key=len, reverse=True)


def assistant_spans(tokenizer, messages: list[dict], train_on: str = "all", *, tools: list[dict] | None = None,
                    train_on_reasoning: bool = True, train_on_tool_results: bool = False,
                    ) -> tuple[str, list[tuple[int, int]]]:
    """The full rendering and the character spans to train: each assistant reply (its reasoning per
    `train_on_reasoning`, its tool calls) plus its end-of-turn token, and tool results when asked.

    Raises:
        TemplateError: the template cannot render a feature the conversation uses, is not prefix-stable, or
            a reply does not appear where it should.
    """
    name = template_name(tokenizer)
    require_features(tokenizer, messages, tools)
    full = render(tokenizer, messages, tools=tools)
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if train_on == "last":
        turns = turns[-1:]
    messages = _rendered_reasoning(tokenizer, messages, tools, full, turns if train_on_reasoning else [])
    closing = _closing_pattern(tokenizer)
    spans = []
    for i in turns:
        prompt, upto = _turn_texts(tokenizer, messages, i, tools, full, name, add_generation_prompt=True)
        start, tail = len(prompt), upto[len(prompt):]
        at = _end_of_pieces(tail, messages[i], i, name)
        # A tool call's markup may hold special tokens of its own, so its turn ends at the end-of-turn token.
        eot = _end_of_turn_string(tokenizer) if messages[i].get("tool_calls") else None
        hit = re.compile(re.escape(eot)).search(tail, at) if eot else None
        hit = hit or (closing.search(tail, at) if closing else None)
        # Without a special token closing the turn, train up to the turn's trailing whitespace.
        end = hit.end() if hit else len(tail.rstrip())
        turn = [(start, start + end)]
        if not train_on_reasoning and messages[i].get("reasoning_content"):
            turn = _cut(turn, _reasoning_block(tokenizer, messages, i, tools, prompt, upto, name))
        spans += turn
    if train_on_tool_results:
        for j in (j for j, m in enumerate(messages) if m["role"] == "tool" and m["content"].strip()):
            before, upto = _turn_texts(tokenizer, messages, j, tools, full, name, add_generation_prompt=False)
            at = upto.find(messages[j]["content"].strip(), len(before))
            if at < 0:
                raise TemplateError(f"the chat template of {name} changes the text of tool result {j + 1}, so its "
                                    "tokens cannot be located; check the template")
            spans.append((at, at + len(messages[j]["content"].strip())))
    return full, sorted(s for s in spans if s[1] > s[0])


def _turn_texts(tokenizer, messages, i, tools, full, name, add_generation_prompt) -> tuple[str, str]:
    """(rendering before message i, rendering through it), both checked to be prefixes where they must be."""
    prompt = render(tokenizer, messages[:i], add_generation_prompt=add_generation_prompt, tools=tools)
    upto = render(tokenizer, messages[: i + 1], tools=tools)
    if not full.startswith(upto):
        raise TemplateError(_unstable(name, i, "the conversation up to this turn renders differently from the "
                                      "start of the full conversation (the template changes earlier turns)",
                                      upto, full))
    if not upto.startswith(prompt):
        what = ("the generation prompt (add_generation_prompt) differs from how the template opens an assistant "
                "turn") if add_generation_prompt else "the conversation before this turn renders differently"
        raise TemplateError(_unstable(name, i, what, prompt, upto))
    return prompt, upto


def _closing_pattern(tokenizer):
    specials = _special_strings(tokenizer)
    return re.compile("|".join(map(re.escape, specials))) if specials else None  # longest first wins


def _end_of_pieces(tail: str, message: dict, index: int, name: str) -> int:
    """Where the last rendered piece of an assistant turn ends in `tail` (reasoning, text, then each call's
    function name, in that order)."""
    at = 0
    pieces = [("reasoning", message.get("reasoning_content", "").strip()), ("text", message["content"].strip())]
    pieces += [(f"call to {c['function']['name']}", c["function"]["name"]) for c in message.get("tool_calls", [])]
    for what, text in pieces:
        if not text:
            continue
        found = tail.find(text, at)
        if found < 0:
            raise TemplateError(f"the chat template of {name} changes the {what} of assistant message {index + 1}, "
                                "so its tokens cannot be located; check the template")
        at = found + len(text)
    return at


def _rendered_reasoning(tokenizer, messages, tools, full, trained_turns) -> list[dict]:
    """`messages` without the reasoning the template leaves out of the whole conversation (so that prefixes
    render as the whole does); TemplateError when a turn in `trained_turns` would lose reasoning to train."""
    def without(indices):
        return [{k: v for k, v in m.items() if not (j in indices and k == "reasoning_content")}
                for j, m in enumerate(messages)]

    dropped = {j for j, m in enumerate(messages) if m.get("reasoning_content")
               and render(tokenizer, without({j}), tools=tools) == full}
    if not dropped:
        return messages
    name, lost = template_name(tokenizer), sorted(dropped & set(trained_turns))
    if lost:
        raise TemplateError(f"the chat template of {name} drops the reasoning of assistant message {lost[0] + 1} "
                            "once a later user turn follows, so that reasoning cannot be trained with labels that "
                            "match the rendering: set data.train_on: last (the final turn keeps its reasoning), "
                            "data.train_on_reasoning: false, or model.chat_template to a template FILE that keeps "
                            "every turn's reasoning (examples/chatml_tools.jinja for ChatML models)")
    kept = without(dropped)
    if render(tokenizer, kept, tools=tools) != full:
        raise TemplateError(f"the chat template of {name} renders reasoning inconsistently across turns; labels "
                            "cannot be derived: set data.train_on: last or use another template")
    return kept


def _reasoning_block(tokenizer, messages, i, tools, prompt, upto, name) -> tuple[int, int]:
    """The characters that turn i's reasoning adds to `upto`, found as the one insertion that turns the
    rendering without it into the rendering with it (placed as early in the turn as it can go)."""
    bare = {k: v for k, v in messages[i].items() if k != "reasoning_content"}
    plain = render(tokenizer, messages[:i] + [bare], tools=tools)
    size = len(upto) - len(plain)
    common_prefix = next((k for k, (a, b) in enumerate(zip(upto, plain)) if a != b), len(plain))
    common_suffix = next((k for k, (a, b) in enumerate(zip(reversed(upto), reversed(plain))) if a != b), len(plain))
    at = max(len(plain) - min(common_suffix, len(plain)), len(prompt))
    if size <= 0 or at > common_prefix:
        raise TemplateError(f"the chat template of {name} does not render the reasoning of assistant message "
                            f"{i + 1} as one block, so it cannot be masked: set data.train_on_reasoning: true")
    return at, at + size


def _cut(spans: list[tuple[int, int]], block: tuple[int, int]) -> list[tuple[int, int]]:
    out = []
    for a, b in spans:
        out += [(a, min(b, block[0])), (max(a, block[1]), b)]
    return [(a, b) for a, b in out if b > a]


def _end_of_turn_string(tokenizer) -> str | None:
    token_id = end_of_turn_token_id(tokenizer)
    return tokenizer.convert_ids_to_tokens(token_id) if token_id is not None else None


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


def tokenize_conversation(tokenizer, messages: list[dict], train_on: str = "all", *, tools: list[dict] | None = None,
                          train_on_reasoning: bool = True, train_on_tool_results: bool = False) -> Tokenized:
    """Token ids of the rendered conversation and labels (-100 outside the trained spans, see
    `assistant_spans`).

    A token is trained when its first character lies inside a trained span: tokens that begin in the prompt
    are never trained, and the end-of-turn token is always inside.
    """
    full, spans = assistant_spans(tokenizer, messages, train_on, tools=tools, train_on_reasoning=train_on_reasoning,
                                  train_on_tool_results=train_on_tool_results)
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
