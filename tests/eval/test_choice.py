import numpy as np
import pytest
import torch

from sftkit.eval.choice import choice_predictions, encode_pair, pick_choices, score_items
from sftkit.eval.tasks import ChoiceItem

ITEMS = [
    ChoiceItem("The capital of France is", ["Paris", "London", "a big city"], [0], "t", 1),
    ChoiceItem("Q: What is 2+2?\nA: ", ["4", "five", "22", "(4)"], [0], "t", 2),
    ChoiceItem("Answer yes or no.\n", ["yes", "no"], [1], "t", 3),
    ChoiceItem("", ["hello", "world"], [0], "t", 4),
    ChoiceItem("Pick one:  ", ["A", "B", "C"], [2], "t", 5),
    ChoiceItem("Was it (", ["a)", "b)"], [1], "t", 6),
]


def reference_logprob(model, tokenizer, context: str, choice: str) -> float:
    """Plain transformers, one unbatched forward pass, no cache: the lm-eval recipe written out by hand."""
    ctx = context.rstrip()
    cont = context[len(ctx):] + " " + choice
    if ctx:
        ctx_ids = tokenizer(ctx).input_ids
        cont_ids = tokenizer(ctx + cont).input_ids[len(ctx_ids):]
    else:
        ctx_ids, cont_ids = [tokenizer.bos_token_id], tokenizer(cont).input_ids
    ids = torch.tensor([ctx_ids + cont_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
    return sum(logprobs[len(ctx_ids) + j - 1, t].item() for j, t in enumerate(cont_ids))


@pytest.mark.parametrize("batch_size", [1, 4])
def test_scores_equal_an_unbatched_reference_exactly_in_float64(tokenizer, batch_size):
    from tests.helpers import make_tiny_model

    model = make_tiny_model(seed=3).double().eval()
    scores = score_items(model, tokenizer, ITEMS, batch_size=batch_size)
    for item, score in zip(ITEMS, scores):
        reference = [reference_logprob(model, tokenizer, item.context, c) for c in item.choices]
        assert score.logprobs == pytest.approx(reference, abs=1e-9, rel=0)
        lengths = np.array([len(c) for c in item.choices], dtype=float)
        assert score.pick == int(np.argmax(reference))
        assert score.pick_norm == int(np.argmax(np.array(reference) / lengths))


def test_float32_scores_match_the_reference_closely_and_picks_exactly(tokenizer, tiny_model):
    model = tiny_model.eval()
    scores = score_items(model, tokenizer, ITEMS, batch_size=3)
    for item, score in zip(ITEMS, scores):
        reference = [reference_logprob(model, tokenizer, item.context, c) for c in item.choices]
        assert score.logprobs == pytest.approx(reference, abs=1e-4, rel=0)
        assert score.pick == int(np.argmax(reference))


def test_the_space_belongs_to_the_continuation(tokenizer):
    ctx, cont = encode_pair(tokenizer, "Question: is it?\nAnswer:", " yes")
    assert tokenizer.decode(ctx) == "Question: is it?\nAnswer:"
    assert tokenizer.decode(cont) == " yes"
    assert ctx + cont == tokenizer("Question: is it?\nAnswer: yes").input_ids


def test_trailing_whitespace_of_the_context_moves_to_the_continuation(tokenizer):
    ctx, cont = encode_pair(tokenizer, "Answer: ", " yes")
    assert tokenizer.decode(ctx) == "Answer:"
    assert tokenizer.decode(cont) == "  yes"
    ctx, cont = encode_pair(tokenizer, "Answer:\n", " yes")
    assert tokenizer.decode(ctx) == "Answer:"
    assert tokenizer.decode(cont) == "\n yes"


def test_empty_context_is_the_bos_token(tokenizer):
    ctx, cont = encode_pair(tokenizer, "", " hello")
    assert ctx == [tokenizer.bos_token_id]
    assert cont == tokenizer(" hello").input_ids


def test_continuation_is_the_tail_of_the_whole_encoding(tokenizer):
    # "(" followed by " a)": whatever the merges, the scored tokens are whole[len(ctx):]
    ctx, cont = encode_pair(tokenizer, "Was it (", " a)")
    whole = tokenizer("Was it ( a)").input_ids
    assert cont == whole[len(ctx):] and len(cont) >= 1


def test_acc_norm_divides_by_characters_and_ties_go_first():
    assert pick_choices([-3.0, -4.0], ["a", "bbbb"]) == (0, 1)  # -3/1 < -4/4
    assert pick_choices([-2.0, -2.0], ["ab", "cd"]) == (0, 0)


def test_choice_predictions_rows_hold_the_exact_prompt_and_logprobs(tokenizer, tiny_model):
    scores = score_items(tiny_model.eval(), tokenizer, ITEMS[:2])
    values, rows = choice_predictions(ITEMS[:2], scores)
    assert rows[0]["prompt"] == "The capital of France is"
    assert rows[1]["choices"] == ["4", "five", "22", "(4)"]
    assert rows[1]["choice_logprobs"] == scores[1].logprobs
    assert values["acc"] == [float(scores[0].pick == 0), float(scores[1].pick == 0)]
    assert values["acc_norm"] == [float(s.pick_norm in i.correct) for i, s in zip(ITEMS[:2], scores)]


def test_long_contexts_keep_their_end(tokenizer):
    from tests.helpers import make_tiny_model

    model = make_tiny_model().eval()
    model.config.max_position_embeddings = 32
    item = ChoiceItem("word " * 100 + "end:", ["x", "y"], [0], "t", 1)
    [score] = score_items(model, tokenizer, [item])
    assert score.context_truncated
    assert len(score.logprobs) == 2 and all(np.isfinite(score.logprobs))
