"""The one generation path: left-padded batches equal unbatched argmax, every stop id ends a reply, stop strings,
seeded sampling, guardrails."""

from __future__ import annotations

import re

import pytest
import torch

from sftkit.errors import UserError
from sftkit.generation import Reply, generate, generate_replies, render_prompt, stop_token_ids
from tests.helpers import make_tiny_model

END_OF_TURN = 2  # <|im_end|>, SmolLM2's tokenizer EOS and the chat template's end-of-turn token
END_OF_TEXT = 0  # <|endoftext|>
PROMPTS = ["Name three colours.", "What is 2 plus 3?", "Say hi."]
CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Count to three"}],
]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def untied_model(seed: int = 0):
    """The tiny Llama with its own random output layer: tied embeddings make a random model repeat its last
    input token, an untied head gives varied replies whose rows can be permuted without touching the inputs."""
    model = make_tiny_model(seed=seed).eval()
    model.config.tie_word_embeddings = False
    generator = torch.Generator().manual_seed(seed)
    model.lm_head.weight = torch.nn.Parameter(torch.randn(model.lm_head.weight.shape, generator=generator) * 0.02)
    return model


def greedy_reference(model, tokenizer, messages: list[dict], max_new_tokens: int, stop_ids=(END_OF_TURN,),
                     min_margin: float = 0.0) -> list[int]:
    """Token-by-token argmax over full forward passes: no padding, no cache, no generate().

    min_margin: the least gap between the best and second-best logit allowed at each step. Batched, cached
    float32 arithmetic moves a logit by ~1e-6 here (logits ~0.2 summed over 64-wide dot products), so a gap
    of 1e-4 means the argmax is the same in every implementation.
    """
    ids = tokenizer.encode(render_prompt(tokenizer, messages), add_special_tokens=False)
    new: list[int] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            top = model(torch.tensor([ids + new])).logits[0, -1].double().topk(2)
            assert float(top.values[0] - top.values[1]) > min_margin, "near-tie: pick another prompt or seed"
            token = int(top.indices[0])
            if token in stop_ids:
                break
            new.append(token)
    return new


@pytest.fixture(scope="module")
def model64():
    return make_tiny_model(seed=5).double().eval()


def test_prompt_uses_the_chat_template_with_a_generation_prompt(tokenizer):
    text = render_prompt(tokenizer, CONVERSATIONS[0])
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("batch_size", [1, 3])
def test_batched_left_padded_greedy_equals_the_unbatched_reference(tokenizer, model64, batch_size):
    replies = generate(model64, tokenizer, CONVERSATIONS, max_new_tokens=6, batch_size=batch_size)
    for reply, conversation in zip(replies, CONVERSATIONS):
        expected = greedy_reference(model64, tokenizer, conversation, 6)
        assert reply.token_ids == expected
        assert reply.text == tokenizer.decode(expected, skip_special_tokens=True)
        assert reply.finish_reason == ("length" if len(expected) == 6 else "stop")
        assert reply.prompt == render_prompt(tokenizer, conversation)
        assert reply.num_prompt_tokens == len(tokenizer.encode(reply.prompt, add_special_tokens=False))
    assert generate_replies(model64, tokenizer, CONVERSATIONS, 6) == [r.text for r in replies]


def test_stop_ids_are_tokenizer_eos_configured_eos_and_template_end_of_turn(tokenizer):
    model = make_tiny_model()
    assert stop_token_ids(model, tokenizer) == [END_OF_TURN]
    other = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    other.eos_token = "<|endoftext|>"
    model.generation_config.eos_token_id = [END_OF_TEXT, 17]
    assert stop_token_ids(model, other) == [END_OF_TEXT, END_OF_TURN, 17]
    model.generation_config.eos_token_id = None
    assert stop_token_ids(model, other) == [END_OF_TEXT, END_OF_TURN]  # <|im_end|> from the template alone


def test_a_configured_eos_that_is_not_the_tokenizer_eos_ends_the_reply(tokenizer):
    model = untied_model()
    natural = [greedy_reference(model, tokenizer, user(p), 8, min_margin=1e-4) for p in PROMPTS]
    stop_at = natural[0][2]
    assert all(stop_at not in n for n in (natural[0][:2], natural[1], natural[2]))
    model.generation_config.eos_token_id = [END_OF_TURN, stop_at]
    replies = generate(model, tokenizer, [user(p) for p in PROMPTS], max_new_tokens=8)
    assert [r.token_ids for r in replies] == [natural[0][:2], natural[1], natural[2]]
    assert [r.finish_reason for r in replies] == ["stop", "length", "length"]


def test_stop_strings_cut_the_reply_before_them(tokenizer):
    model = untied_model()
    natural = greedy_reference(model, tokenizer, user(PROMPTS[0]), 8, min_margin=1e-4)
    full = tokenizer.decode(natural)
    stop = tokenizer.decode(natural[3:5]).strip()  # a word in the middle of the reply
    assert full.find(stop) >= len(tokenizer.decode(natural[:3]))
    (reply,) = generate(model, tokenizer, [user(PROMPTS[0])], max_new_tokens=8, stop=[stop, "never appears"])
    assert reply.text == full[:full.find(stop)]
    assert reply.finish_reason == "stop" and reply.token_ids == natural[:5]


def test_sampling_is_seeded_and_leaves_the_global_random_state_alone(tokenizer):
    model = untied_model()
    conversations = [user(p) for p in PROMPTS]
    state = torch.get_rng_state()
    first = generate(model, tokenizer, conversations, 6, temperature=1.0, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert [r.token_ids for r in generate(model, tokenizer, conversations, 6, temperature=1.0, seed=7)] == \
        [r.token_ids for r in first]
    other = generate(model, tokenizer, conversations, 6, temperature=1.0, seed=8)
    assert [r.token_ids for r in other] != [r.token_ids for r in first]
    # a nucleus smaller than the top token's probability holds only that token: sampling is greedy
    greedy = generate(model, tokenizer, conversations, 6)
    nucleus = generate(model, tokenizer, conversations, 6, temperature=1.0, top_p=1e-6, seed=7)
    assert [r.token_ids for r in nucleus] == [r.token_ids for r in greedy]


@pytest.mark.parametrize("options, message", [({"temperature": -1.0}, "temperature -1.0 is negative"),
                                              ({"top_p": 0.0}, r"top_p 0.0 is outside \(0, 1\]"),
                                              ({"max_new_tokens": 0}, "max_new_tokens 0: a reply needs at least 1")])
def test_bad_generation_options_are_user_errors(tokenizer, options, message):
    with pytest.raises(UserError, match=message):
        generate(make_tiny_model(), tokenizer, [user("Hi")], **{"max_new_tokens": 2, **options})


def test_guard_blocks_requests_before_and_replies_after_generation(tmp_path, tokenizer):
    from sftkit.safety.guardrails import Guardrail

    model = untied_model()
    plain = generate(model, tokenizer, [user(PROMPTS[0]), user(PROMPTS[2])], 4)
    blocklist = tmp_path / "list.txt"
    blocklist.write_text("colours\n" + re.escape(tokenizer.decode(plain[1].token_ids[:1]).strip()) + "\n")
    guard = Guardrail.from_options([str(blocklist)], None)
    guarded = generate(model, tokenizer, [user(PROMPTS[0]), user(PROMPTS[1]), user(PROMPTS[2])], 4, guard=guard)
    assert guarded[0] == Reply(f"[guardrail] This request was not sent to the model: it matched pattern 'colours' "
                               f"({blocklist}:1).", [], "content_filter", plain[0].prompt, plain[0].num_prompt_tokens)
    assert guarded[1] == generate(model, tokenizer, [user(PROMPTS[1])], 4)[0]
    assert guarded[2].text.startswith("[guardrail] This reply was withheld") and guarded[2].token_ids == []
    assert [(e["index"], e["where"]) for e in guard.events] == [(0, "input"), (2, "output")]


def test_per_conversation_limits_equal_generating_each_alone(tokenizer):
    model = untied_model()
    conversations = [user(p) for p in PROMPTS]
    together = generate(model, tokenizer, conversations, [2, 6, 4])
    alone = [generate(model, tokenizer, [c], limit)[0] for c, limit in zip(conversations, [2, 6, 4])]
    assert together == alone
    assert [len(r.token_ids) for r in together] == [2, 6, 4] and {r.finish_reason for r in together} == {"length"}
    with pytest.raises(ValueError, match="2 max_new_tokens limits for 3 conversations"):
        generate(model, tokenizer, conversations, [2, 6])


class Recorder:
    """A GenerationHook that records every token and cancels conversation `cancel_index` after `after` tokens."""

    def __init__(self, cancel_index: int | None = None, after: int = 0):
        self.tokens: dict[int, list[int]] = {}
        self.cancel_index, self.after = cancel_index, after

    def on_token(self, index, token_id):
        self.tokens.setdefault(index, []).append(token_id)

    def cancelled(self, index):
        return index == self.cancel_index and len(self.tokens.get(index, [])) >= self.after


def test_a_hook_sees_each_token_as_generated_and_can_cancel_a_row(tokenizer):
    model = untied_model()
    conversations = [user(p) for p in PROMPTS]
    natural = generate(model, tokenizer, conversations, 8)
    seen = Recorder()
    assert generate(model, tokenizer, conversations, 8, hook=seen) == natural
    assert seen.tokens == {i: r.token_ids for i, r in enumerate(natural)}  # stop tokens and padding not passed
    cancelling = Recorder(cancel_index=1, after=3)
    replies = generate(model, tokenizer, conversations, 8, hook=cancelling)
    # checked with 3 tokens seen, in the step that chose the 4th: the row ends with it, and the hook gets it
    assert replies[1].finish_reason == "cancelled"
    assert replies[1].token_ids == cancelling.tokens[1] == natural[1].token_ids[:4]
    assert replies[1].text == tokenizer.decode(natural[1].token_ids[:4], skip_special_tokens=True)
    assert [replies[0], replies[2]] == [natural[0], natural[2]]
