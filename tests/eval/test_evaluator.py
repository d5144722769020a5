"""Every task kind scores exactly the text its predictions show.

Multiple choice: the tokens scored for choice i are the tokens of `prompt + delimiter + choices[i]` after those of
the prompt without its trailing whitespace, and `choice_logprobs[i]` is their summed log-probability in one plain
forward pass over the whole text. Generation: the output is the greedy continuation of the tokens of `prompt`.

The model is float64, so the batched, cached scorer and the plain pass differ only by float64 rounding: about
1e-16 relative per operation, ~1e-13 on a sum of a few log-probabilities of size ~10; 1e-9 is far above that and
far below the smallest difference a wrong token makes (a log-probability of one token, > 1e-3 here).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sftkit.eval.choice import encode_item
from sftkit.eval.evaluator import Evaluator
from sftkit.eval.settings import EvalSettings
from sftkit.eval.tasks import load_task
from tests.helpers import make_tiny_model
from tests.helpers import greedy_text

FLOAT64_ATOL = 1e-9
# BIG-bench prompts: the default output prefix "\nA: " ends with a space; "\nAssistant:" (hhh_alignment) does
# not; two spaces; one that ends a line. Choices with a leading space, and one without a trailing prefix at all.
SPACE_TASK = {"examples": [{"input": "Is the sky blue?", "target_scores": {"Yes": 1, "No": 0}},
                           {"input": "Pick the fruit.", "target_scores": {" apple": 1, "stone": 0, "a pear": 1}}]}
NO_SPACE_TASK = {"example_input_prefix": "\nHuman: ", "example_output_prefix": "\nAssistant:",
                 "append_choices_to_input": False,
                 "examples": [{"input": "Help me.", "target_scores": {"Sure, here is how.": 1, "No.": 0}}]}
TWO_SPACES_TASK = {"task_prefix": "Answer briefly.\n", "example_output_prefix": "\nAnswer:  ",
                   "examples": [{"input": "2+2?", "target_scores": {"4": 1, "  five": 0}}]}
NEWLINE_TASK = {"example_output_prefix": "\nAnswer:\n",
                "examples": [{"input": "Colour of grass?", "target_scores": {"green": 1, "red": 0}}]}


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if isinstance(data, dict) else "".join(json.dumps(r) + "\n" for r in data))
    return str(path)


@pytest.fixture
def model64():
    return make_tiny_model(seed=5).double().eval()


@pytest.fixture
def evaluator(model64, tokenizer, monkeypatch):
    """An Evaluator whose model is the float64 tiny model (loaded through the real seam)."""
    import sftkit.models

    monkeypatch.setattr(sftkit.models, "load_for_inference", lambda *args, **kwargs: (model64, tokenizer, "tiny64"))
    # float32 keeps the float64 model as it is (`auto` would cast it to bfloat16 on CPUs with native bf16)
    return Evaluator("tiny64", EvalSettings(max_new_tokens=6, generation_batch_size=2, scoring_batch_size=2,
                                            dtype="float32"),
                     use_cache=False)


def plain_logprob(model, tokenizer, prompt: str, text: str) -> tuple[float, list[str]]:
    """Summed log-probability of the tokens of `text` after those of `prompt.rstrip()`: one full forward pass."""
    ctx_ids, ids = tokenizer(prompt.rstrip()).input_ids, tokenizer(text).input_ids
    assert ids[:len(ctx_ids)] == ctx_ids and len(ids) > len(ctx_ids)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0], dim=-1)
    total = sum(logprobs[i - 1, ids[i]].item() for i in range(len(ctx_ids), len(ids)))
    return total, tokenizer.convert_ids_to_tokens(ids[len(ctx_ids):])


def check_choice_task(task, evaluator, model, tokenizer) -> list[dict]:
    """Scored tokens are the reader's text's; recorded log-probabilities are the plain sums. Returns the rows."""
    result = evaluator.run(task)
    assert len(result.predictions) == len(task.items)
    for item, row in zip(task.items, result.predictions):
        ctx_ids, conts = encode_item(tokenizer, item)
        texts = [row["prompt"] + row["delimiter"] + c for c in row["choices"]]
        assert ctx_ids == tokenizer(row["prompt"].rstrip()).input_ids
        for text, cont in zip(texts, conts):
            assert ctx_ids + cont == tokenizer(text).input_ids
        reference = [plain_logprob(model, tokenizer, row["prompt"], text)[0] for text in texts]
        assert row["choice_logprobs"] == pytest.approx(reference, abs=FLOAT64_ATOL, rel=0)
        assert row["pick"] == int(np.argmax(reference))
    return result.predictions


def _continuations(rows, model, tokenizer) -> list[list[list[str]]]:
    return [[plain_logprob(model, tokenizer, r["prompt"], r["prompt"] + r["delimiter"] + c)[1]
             for c in r["choices"]] for r in rows]


def test_bigbench_task_file_scores_the_choice_after_exactly_one_space(tmp_path, evaluator, model64, tokenizer):
    path = _write(tmp_path / "space" / "task.json", SPACE_TASK)
    rows = check_choice_task(load_task(path), evaluator, model64, tokenizer)
    assert all(r["prompt"].endswith("\nA: ") and r["delimiter"] == "" for r in rows)
    assert rows[0]["choices"] == ["Yes", "No"] and rows[1]["choices"] == ["apple", "stone", "a pear"]
    # one space, one token: "A: Yes", never "A:  Yes" (tokens "Ġ", "ĠYes")
    assert _continuations(rows, model64, tokenizer) == [
        [["ĠYes"], ["ĠNo"]], [["Ġapple"], ["Ġstone"], ["Ġa", "Ġpear"]]]


@pytest.mark.parametrize("task, prompt_end, continuations", [
    (NO_SPACE_TASK, "\nHuman: Help me.\nAssistant: ", [["ĠSure", ",", "Ġhere", "Ġis", "Ġhow", "."], ["ĠNo", "."]]),
    (TWO_SPACES_TASK, "\nAnswer: ", [["Ġ", "4"], ["Ġfive"]]),
    (NEWLINE_TASK, "\nAnswer:\n", [["Ċ", "green"], ["Ċ", "red"]]),
])
def test_bigbench_whitespace_rule_for_prompts_with_and_without_a_trailing_space(
        tmp_path, evaluator, model64, tokenizer, task, prompt_end, continuations):
    rows = check_choice_task(load_task(_write(tmp_path / "task.json", task)), evaluator, model64, tokenizer)
    assert rows[0]["prompt"].endswith(prompt_end) and not rows[0]["prompt"].endswith(prompt_end + " ")
    assert _continuations(rows, model64, tokenizer) == [continuations]


def test_bigbench_names_from_the_cache_layout_score_the_reader_text(tmp_path, evaluator, model64, tokenizer,
                                                                     monkeypatch):
    monkeypatch.setenv("SFTKIT_HOME", str(tmp_path / "home"))
    tasks = tmp_path / "home" / "bigbench" / "tasks"
    _write(tasks / "crafted" / "task.json", SPACE_TASK)
    _write(tasks / "crafted_hhh" / "helpful" / "task.json", NO_SPACE_TASK)  # a task with subtasks, as hhh_alignment
    _write(tasks / "crafted_hhh" / "harmless" / "task.json", NEWLINE_TASK)
    rows = check_choice_task(load_task("bigbench:crafted"), evaluator, model64, tokenizer)
    assert rows[0]["prompt"] == "\nQ: Is the sky blue?\n  choice: Yes\n  choice: No\nA: "
    assert rows[0]["prompt"] + rows[0]["delimiter"] + rows[0]["choices"][0] == (
        "\nQ: Is the sky blue?\n  choice: Yes\n  choice: No\nA: Yes")
    rows = check_choice_task(load_task("bigbench:crafted_hhh"), evaluator, model64, tokenizer)
    assert [r["prompt"].rsplit("\n", 1)[-1] for r in rows] == ["", "Assistant: "]  # harmless, helpful (sorted)


def test_bigbench_examples_with_an_empty_choice_are_counted_and_skipped(tmp_path):
    task = {"examples": [{"input": "a", "target_scores": {"x": 1, " ": 0}},
                         {"input": "b", "target_scores": {"x": 1, "y": 0}}]}
    with pytest.warns(UserWarning, match=r"skipped \{'empty_choice': 1\}"):
        loaded = load_task(_write(tmp_path / "task.json", task))
    assert [i.line for i in loaded.items] == [2] and loaded.skipped == {"empty_choice": 1}


def test_lm_eval_jsonl_scores_prompt_space_choice_as_lm_eval_harness(tmp_path, evaluator, model64, tokenizer):
    path = _write(tmp_path / "mc.jsonl", [
        {"question": "Which word?", "choices": ["alpha", "beta"], "answer": 0},
        {"question": "Answer with a colour: ", "choices": ["red", "a shade of green"], "answer": 1},
        {"question": "Reply yes or no:\n", "choices": ["yes", "no"], "answer": 0},
    ])
    rows = check_choice_task(load_task(path), evaluator, model64, tokenizer)
    assert [r["prompt"] for r in rows] == ["Which word?", "Answer with a colour: ", "Reply yes or no:\n"]
    assert all(r["delimiter"] == " " for r in rows)
    # lm-eval's target_delimiter is added whatever the context ends with (parity: tests/eval/test_lm_eval_parity.py)
    assert _continuations(rows, model64, tokenizer) == [
        [["Ġalpha"], ["Ġbeta"]], [["Ġ", "Ġred"], ["Ġ", "Ġa", "Ġshade", "Ġof", "Ġgreen"]],
        [["Ċ", "Ġyes"], ["Ċ", "Ġno"]]]


def test_generation_tasks_continue_exactly_the_recorded_prompt(tmp_path, evaluator, model64, tokenizer):
    chat = _write(tmp_path / "chat.jsonl", [
        {"messages": [{"role": "user", "content": "What is 2 plus 3?"}, {"role": "assistant", "content": "5"}]},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
                      {"role": "assistant", "content": "Red"}]},
    ])
    bigbench = _write(tmp_path / "gen" / "task.json", {"task_prefix": "Add.\n",
                                                       "examples": [{"input": "1+1", "target": ["2", "two"]}]})
    for spec in (chat, bigbench):
        task = load_task(spec)
        result = evaluator.run(task)
        for item, row in zip(task.items, result.predictions):
            assert row["prompt"] == tokenizer.apply_chat_template(item.messages, tokenize=False,
                                                                  add_generation_prompt=True)
            assert row["output"] == greedy_text(model64, tokenizer, row["prompt"], 6)
    assert task.items[0].messages == [{"role": "user", "content": "Add.\n1+1"}]
