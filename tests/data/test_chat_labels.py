"""Labels derived from the real SmolLM2 chat template: exactly the assistant replies and their `<|im_end|>`."""

from __future__ import annotations

import pytest

from sftkit.data.chat_labels import (
    CHATML_TEMPLATE,
    IGNORE_INDEX,
    TemplateError,
    end_of_turn_token_id,
    ensure_chat_template,
    render,
    tokenize_conversation,
    trained_segments,
)

IM_START, IM_END, NEWLINE = 1, 2, 198
SMOL_SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
MULTI_TURN = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4."},
              {"role": "user", "content": "And 3+3?"}, {"role": "assistant", "content": "6."}]
WITH_SYSTEM = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Capital of France?"},
               {"role": "assistant", "content": "Paris."}]


def trained(tok) -> list[tuple[int, int]]:
    return [(i, label) for i, label in enumerate(tok.labels) if label != IGNORE_INDEX]


def check_invariants(tok) -> None:
    assert len(tok.labels) == len(tok.input_ids)
    assert all(label in (IGNORE_INDEX, tid) for tid, label in zip(tok.input_ids, tok.labels))
    assert tok.input_ids[0] == IM_START and tok.input_ids[1] != IM_START  # one BOS-like start, never doubled


def test_system_prompt_labels_exact(tokenizer):
    tok = tokenize_conversation(tokenizer, WITH_SYSTEM)
    assert tok.text == ("<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nCapital of France?<|im_end|>\n"
                        "<|im_start|>assistant\nParis.<|im_end|>\n")
    assert tok.input_ids == [1, 9690, 198, 2683, 359, 1733, 313, 30, 2, 198, 1, 4093, 198, 39832, 282, 4649, 47, 2,
                             198, 1, 520, 9531, 198, 38634, 30, 2, 198]
    # "Paris" "." "<|im_end|>" trained; the "\n" after <|im_end|> (position 26) is not.
    assert trained(tok) == [(23, 38634), (24, 30), (25, IM_END)]
    assert tok.labels[26] == IGNORE_INDEX and tok.input_ids[26] == NEWLINE
    check_invariants(tok)


def test_multi_turn_trains_every_assistant_turn(tokenizer):
    tok = tokenize_conversation(tokenizer, MULTI_TURN)
    assert tok.text == (SMOL_SYSTEM + "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n"
                        "<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n6.<|im_end|>\n")
    assert trained(tok) == [(34, 36), (35, 30), (36, IM_END), (53, 38), (54, 30), (55, IM_END)]
    assert [tok.input_ids[i] for i in (37, 56)] == [NEWLINE, NEWLINE]
    assert trained_segments(tokenizer, tok.input_ids, tok.labels) == ["4.<|im_end|>", "6.<|im_end|>"]
    check_invariants(tok)


def test_train_on_last_trains_only_the_last_turn(tokenizer):
    tok = tokenize_conversation(tokenizer, MULTI_TURN, train_on="last")
    assert trained(tok) == [(53, 38), (54, 30), (55, IM_END)]
    assert tok.input_ids == tokenize_conversation(tokenizer, MULTI_TURN).input_ids


def test_every_end_of_turn_is_supervised_although_pad_equals_eos(tokenizer):
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == IM_END
    tok = tokenize_conversation(tokenizer, MULTI_TURN)
    end_positions = [i for i, t in enumerate(tok.input_ids) if t == IM_END]
    # <|im_end|> closes the system, two user and two assistant turns; only the assistant ones are trained.
    assert [tok.labels[i] for i in end_positions] == [IGNORE_INDEX, IGNORE_INDEX, IM_END, IGNORE_INDEX, IM_END]


def test_reply_with_surrounding_whitespace_and_newlines(tokenizer):
    messages = [{"role": "user", "content": "Two lines?"}, {"role": "assistant", "content": "Line one\nLine two "}]
    tok = tokenize_conversation(tokenizer, messages)
    assert trained_segments(tokenizer, tok.input_ids, tok.labels) == ["Line one\nLine two <|im_end|>"]
    check_invariants(tok)


def test_rendered_prefixes_are_prefixes_of_the_full_rendering(tokenizer):
    for messages in (MULTI_TURN, WITH_SYSTEM):
        full = render(tokenizer, messages)
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            prompt = render(tokenizer, messages[:i], add_generation_prompt=True)
            upto = render(tokenizer, messages[: i + 1])
            assert prompt.endswith("<|im_start|>assistant\n")
            assert upto.startswith(prompt) and full.startswith(upto)
            assert upto[len(prompt):] == message["content"] + "<|im_end|>\n"


# Renders only the final assistant reply (like templates that strip earlier reasoning): earlier turns change.
DROPS_EARLIER_TURNS = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' and not loop.last %}[earlier reply]{% else %}{{ m['content'] }}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# The generation prompt has a space that assistant turns do not.
GENERATION_PROMPT_DIFFERS = CHATML_TEMPLATE.replace("'<|im_start|>assistant\n'", "'<|im_start|>assistant \n'")


def test_template_that_changes_earlier_turns_is_refused(tokenizer, monkeypatch):
    monkeypatch.setattr(tokenizer, "chat_template", DROPS_EARLIER_TURNS)
    with pytest.raises(TemplateError) as info:
        tokenize_conversation(tokenizer, MULTI_TURN)
    assert str(info.value) == (
        f"the chat template of {tokenizer.name_or_path} is not prefix-stable at message 2: the conversation up to "
        "this turn renders differently from the start of the full conversation (the template changes earlier "
        "turns); first difference at character 54: '4.<|im_end|>\\n' vs '[earlier reply]<|im_end|>\\n<|im'. "
        "Labels cannot be derived safely: set model.chat_template to a template whose rendering of the first "
        "turns (with add_generation_prompt before an assistant turn) is the start of the full rendering")
    # With a single assistant turn the same template is prefix-stable.
    tok = tokenize_conversation(tokenizer, MULTI_TURN[:2])
    assert trained_segments(tokenizer, tok.input_ids, tok.labels) == ["4.<|im_end|>"]


def test_template_whose_generation_prompt_differs_is_refused(tokenizer, monkeypatch):
    assert GENERATION_PROMPT_DIFFERS != CHATML_TEMPLATE
    monkeypatch.setattr(tokenizer, "chat_template", GENERATION_PROMPT_DIFFERS)
    with pytest.raises(TemplateError) as info:
        tokenize_conversation(tokenizer, WITH_SYSTEM)
    assert str(info.value).startswith(
        f"the chat template of {tokenizer.name_or_path} is not prefix-stable at message 3: the generation prompt "
        "(add_generation_prompt) differs from how the template opens an assistant turn; first difference at "
        "character 111: ' \\n' vs '\\nParis.<|im_end|>\\n'. Labels cannot be derived safely")


def test_template_that_raises_becomes_template_error(tokenizer, monkeypatch):
    monkeypatch.setattr(tokenizer, "chat_template", "{{ raise_exception('roles must alternate') }}")
    with pytest.raises(TemplateError) as info:
        tokenize_conversation(tokenizer, WITH_SYSTEM)
    assert str(info.value) == (f"the chat template of {tokenizer.name_or_path} cannot render this conversation "
                               "(3 message(s)): roles must alternate")


@pytest.mark.parametrize("template, expected", [
    (None, IM_END),  # SmolLM2's own template
    ("{% for m in messages %}{{ m['content'] }}\n<|endoftext|>{% endfor %}", 0),  # whitespace before the token
    ("{% for m in messages %}{{ m['content'] }}\n\n{% endfor %}", None),  # no special token closes a reply
    ("{{ raise_exception('roles must alternate') }}", None),
])
def test_end_of_turn_token_is_the_first_special_token_after_a_reply(tokenizer, monkeypatch, template, expected):
    if template is not None:
        monkeypatch.setattr(tokenizer, "chat_template", template)
    assert end_of_turn_token_id(tokenizer) == expected


def test_missing_chat_template_falls_back_to_chatml_with_warning(tokenizer, monkeypatch):
    monkeypatch.setattr(tokenizer, "chat_template", None)
    with pytest.warns(UserWarning, match="has no chat template; using ChatML"):
        ensure_chat_template(tokenizer)
    assert tokenizer.chat_template == CHATML_TEMPLATE
    tok = tokenize_conversation(tokenizer, MULTI_TURN)
    # ChatML has no default system turn, so the text starts with the user turn.
    assert tok.text == ("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n"
                        "<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n6.<|im_end|>\n")
    assert trained(tok) == [(13, 36), (14, 30), (15, IM_END), (32, 38), (33, 30), (34, IM_END)]
    check_invariants(tok)


def test_template_bos_is_not_doubled_by_a_tokenizer_that_adds_one(tokenizer):
    """Llama-3-style: the template writes `{{ bos_token }}` and the tokenizer would also prepend BOS on
    encode; the rendered conversation must start with exactly one BOS (SmolLM2 itself has no BOS)."""
    import copy

    from tokenizers.processors import TemplateProcessing

    tok = copy.deepcopy(tokenizer)
    bos = "<|endoftext|>"
    bos_id = tok.convert_tokens_to_ids(bos)
    tok.bos_token = bos
    tok.chat_template = "{{ bos_token }}" + CHATML_TEMPLATE
    tok.backend_tokenizer.post_processor = TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, bos_id)])
    assert tok("hi").input_ids[:2] == [bos_id, tok("hi", add_special_tokens=False).input_ids[0]]  # it does add one
    out = tokenize_conversation(tok, WITH_SYSTEM)
    assert out.input_ids[0] == bos_id and out.input_ids[1] == IM_START
    assert out.input_ids.count(bos_id) == 1
    assert [label for label in out.labels if label != IGNORE_INDEX] == [38634, 30, IM_END]  # "Paris" "." <|im_end|>
