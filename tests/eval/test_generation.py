import pytest
import torch

from sftkit.eval.generation import generate, generation_predictions, render_prompt
from sftkit.eval.metrics import parse_extract
from sftkit.eval.tasks import GenerationItem

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Count to three"}],
]


def greedy_reference(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """Token-by-token argmax over full forward passes: no padding, no cache, no generate()."""
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    new = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            token = int(model(torch.tensor([ids + new])).logits[0, -1].argmax())
            if token == tokenizer.eos_token_id:
                break
            new.append(token)
    return tokenizer.decode(new, skip_special_tokens=True)


@pytest.fixture(scope="module")
def model64():
    from tests.conftest import make_tiny_model

    return make_tiny_model(seed=5).double().eval()


def test_prompt_uses_the_chat_template_with_a_generation_prompt(tokenizer):
    text = render_prompt(tokenizer, CONVERSATIONS[0])
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("batch_size", [1, 3])
def test_batched_left_padded_greedy_equals_the_unbatched_reference(tokenizer, model64, batch_size):
    prompts = [render_prompt(tokenizer, c) for c in CONVERSATIONS]
    outputs = generate(model64, tokenizer, prompts, max_new_tokens=6, batch_size=batch_size)
    assert outputs == [greedy_reference(model64, tokenizer, p, 6) for p in prompts]
    assert all(len(tokenizer.encode(o, add_special_tokens=False)) <= 7 for o in outputs)


def test_generation_predictions_score_and_record_each_example():
    items = [GenerationItem([{"role": "user", "content": "q1"}], ["Paris"], "f.jsonl", 3),
             GenerationItem([{"role": "user", "content": "q2"}], ["4", "four"], "f.jsonl", 4)]
    outputs = ["Answer: Paris.\nMore text", "I think five"]
    values, rows = generation_predictions(items, ["P1", "P2"], outputs, parse_extract(r"regex:Answer: (\w+)"))
    assert values["exact_match"] == [1.0, 0.0]
    assert values["contains"] == [1.0, 0.0]
    assert rows[0] == {"source": "f.jsonl", "line": 3, "prompt": "P1", "output": outputs[0], "reference": "Paris",
                       "exact_match": 1.0, "normalized_exact_match": 1.0, "contains": 1.0, "token_f1": 1.0,
                       "extracted": "Paris"}
    assert rows[1]["extracted"] is None and rows[1]["references"] == ["4", "four"]
