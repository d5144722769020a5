import json

import numpy as np
import pytest

from sftkit.errors import UserError
from sftkit.eval.tasks import GenerationItem, add_shots, load_task


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_lm_eval_jsonl_is_multiple_choice(tmp_path):
    spec = write_jsonl(tmp_path / "mc.jsonl", [
        {"question": "2+2=", "choices": ["3", "4"], "answer": 1},
        {"context": "Sky colour:", "choices": ["blue", "green"], "answer": "blue"},
        {"context": "Passage.", "question": "Q?", "choices": ["x", "y", "z"], "answer": "2"},
    ])
    task = load_task(spec)
    assert task.kind == "choice" and task.headline == "acc"
    assert [(i.context, i.correct, i.line) for i in task.items] == [
        ("2+2=", [1], 1), ("Sky colour:", [0], 2), ("Passage.\nQ?", [2], 3)]


def test_lm_eval_bad_rows_name_file_and_line_or_are_counted(tmp_path):
    spec = write_jsonl(tmp_path / "mc.jsonl", [
        {"question": "ok", "choices": ["a", "b"], "answer": 0},
        {"question": "bad answer", "choices": ["a", "b"], "answer": 5},
        {"question": "one choice", "choices": ["a"], "answer": 0},
        {"choices": ["a", "b"], "answer": 0},
    ])
    with pytest.raises(UserError, match=r"mc.jsonl:2: `answer` 5 is neither an index below 2"):
        load_task(spec)
    task = load_task(spec, on_bad_row="skip")
    assert len(task.items) == 1
    assert dict(task.skipped) == {"bad_answer": 1, "bad_choices": 1, "missing_field": 1}


def test_bigbench_task_file_multiple_choice_and_generative(tmp_path):
    mc = {"examples": [{"input": "Sky?", "target_scores": {"red": 0, "blue": 1, "teal": 1}}],
          "task_prefix": "Colours.\n"}
    (tmp_path / "mc.json").write_text(json.dumps(mc))
    task = load_task(str(tmp_path / "mc.json"))
    assert task.kind == "choice"
    [item] = task.items
    assert item.choices == ["red", "blue", "teal"] and item.correct == [1, 2]
    # BIG-bench's own zero-shot format: prefix, "\nQ: ", input, choices in its seeded order, "\nA: "
    order = np.random.RandomState(seed=42).permutation(["blue", "red", "teal"])
    assert item.context == "Colours.\n\nQ: Sky?" + "".join("\n  choice: " + c for c in order) + "\nA: "

    gen = {"examples": [{"input": "1+1", "target": ["2", "two"]}, {"input": "3+3", "target": "6"}]}
    (tmp_path / "gen.json").write_text(json.dumps(gen))
    task = load_task(str(tmp_path / "gen.json"))
    assert task.kind == "generation" and task.headline == "exact_match"
    assert [i.references for i in task.items] == [["2", "two"], ["6"]]
    assert task.items[0].messages == [{"role": "user", "content": "1+1"}]


def test_conversation_file_is_generation_with_the_last_reply_as_reference(tmp_path):
    spec = write_jsonl(tmp_path / "chat.jsonl", [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello"}], "source": "orig.jsonl", "line": 7},
        {"messages": [{"role": "user", "content": "1+1"}, {"role": "assistant", "content": "2"}]},
    ])
    task = load_task(spec)
    assert task.kind == "generation" and task.headline is None
    assert task.items[0].messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert task.items[0].references == ["Hello"]
    assert (task.items[0].source, task.items[0].line) == ("orig.jsonl", 7)
    assert (task.items[1].references, task.items[1].line) == (["2"], 2)


def test_perplexity_text_file_is_split_on_blank_lines(tmp_path):
    (tmp_path / "t.txt").write_text("First doc\nline two.\n\n\nSecond doc.\n")
    task = load_task(f"perplexity:{tmp_path / 't.txt'}")
    assert task.kind == "perplexity"
    assert [i.text for i in task.items] == ["First doc\nline two.", "Second doc."]
    with pytest.raises(UserError, match="perplexity text not found"):
        load_task("perplexity:/no/such.txt")


def test_subsample_is_seeded_and_keeps_file_order(tmp_path):
    spec = write_jsonl(tmp_path / "mc.jsonl", [{"question": f"q{i}", "choices": ["a", "b"], "answer": 0}
                                               for i in range(50)])
    a, b, c = load_task(spec, 10, seed=1), load_task(spec, 10, seed=1), load_task(spec, 10, seed=2)
    lines = [i.line for i in a.items]
    assert lines == [i.line for i in b.items] and lines == sorted(lines) and len(lines) == 10
    assert lines != [i.line for i in c.items]
    assert a.num_available == 50 and a.fingerprint() == b.fingerprint() != c.fingerprint()


def _item(q, a, line=1):
    return GenerationItem([{"role": "user", "content": q}], [a], "f", line)


def test_few_shot_prompts_never_contain_test_examples():
    test = [_item(f"test question {i}", f"t{i}", i) for i in range(20)]
    # the pool holds copies of every test example (duplicates across splits) and 30 clean ones
    pool = [_item(f"train question {i}", f"a{i}", i) for i in range(30)] + list(test)
    from sftkit.eval.tasks import Task

    shot_task = add_shots(Task("t", "generation", test), pool, shots=5, seed=3)
    test_questions = {i.messages[0]["content"] for i in test}
    for original, item in zip(test, shot_task.items):
        shots = item.messages[:-1]
        assert len(shots) == 10
        assert [m["role"] for m in shots] == ["user", "assistant"] * 5
        assert not {m["content"] for m in shots} & test_questions
        assert item.messages[-1] == original.messages[0]
    assert shot_task.shots == 5 and shot_task.fingerprint() != Task("t", "generation", test).fingerprint()


def test_few_shot_keeps_the_system_turn_first_and_needs_enough_examples():
    from sftkit.eval.tasks import Task

    test = [GenerationItem([{"role": "system", "content": "S"}, {"role": "user", "content": "q"}], ["a"], "f", 1)]
    pool = [GenerationItem([{"role": "system", "content": "X"}, {"role": "user", "content": "p"}], ["b"], "g", 1)]
    item = add_shots(Task("t", "generation", test), pool, 1).items[0]
    assert item.messages == [{"role": "system", "content": "S"}, {"role": "user", "content": "p"},
                             {"role": "assistant", "content": "b"}, {"role": "user", "content": "q"}]
    with pytest.raises(UserError, match="needs 2 training examples but only 1"):
        add_shots(Task("t", "generation", test), pool, 2)
