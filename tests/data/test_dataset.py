"""load_conversations + tokenize_examples: exact labels for every format, the length policy, counted skips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sftkit.data.dataset import DataReport, load_conversations, split_indices, tokenize_examples
from sftkit.data.chat_labels import IGNORE_INDEX
from sftkit.errors import UserError

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "data"
IM_END = 2


def trained_ids(example) -> list[int]:
    return [label for label in example.labels if label != IGNORE_INDEX]


def check_invariants(examples) -> None:
    for ex in examples:
        assert len(ex.labels) == len(ex.input_ids)
        assert all(label in (IGNORE_INDEX, tid) for tid, label in zip(ex.input_ids, ex.labels))
        assert ex.input_ids[:2].count(1) == 1  # no doubled <|im_start|>/BOS


@pytest.fixture
def prompt_completion_parquet(tmp_path) -> Path:
    path = tmp_path / "pc.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": "Say hi.", "completion": "Hi!"},
                                         {"prompt": "Capital of France?", "completion": "Paris."}]), path)
    return path


# Per file: (format, [(line, trained token ids)]) — each reply's tokens followed by <|im_end|> (2), nothing else.
EXPECTED = {
    "messages.jsonl": ("messages", [(1, [38634, 30, IM_END]), (2, [36, 30, IM_END, 38, 30, IM_END])]),
    "sharegpt.json": ("sharegpt", [(1, [23390, 30, IM_END, 15420, 30, IM_END]), (2, [26843, 17, IM_END])]),
    "alpaca.csv": ("alpaca", [(2, [30904, 24583, IM_END]), (3, [75, 34, 28, 216, 35, 28, 216, 37, 77, IM_END]),
                              (4, [11907, 582, 198, 11907, 827, IM_END])]),
    "bigbench_task.json": ("bigbench", [(1, [34, IM_END]), (2, [16591, IM_END])]),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_format_trains_exactly_the_replies(tokenizer, name):
    fmt, expected = EXPECTED[name]
    examples, report = load_conversations(str(ASSETS / name))
    assert dict(report.formats) == {fmt: len(expected)}
    tokenized, report = tokenize_examples(tokenizer, examples, max_length=1024, report=report)
    assert [(t.line, trained_ids(t)) for t in tokenized] == expected
    assert report.rows_skipped == 0
    check_invariants(tokenized)


@pytest.mark.parametrize("fmt", ["auto", "prompt_completion"])
def test_parquet_prompt_completion(tokenizer, prompt_completion_parquet, fmt):
    examples, report = load_conversations(str(prompt_completion_parquet), fmt=fmt)
    tokenized, _ = tokenize_examples(tokenizer, examples, max_length=1024)
    assert dict(report.formats) == {"prompt_completion": 2}
    assert [trained_ids(t) for t in tokenized] == [[26843, 17, IM_END], [38634, 30, IM_END]]
    check_invariants(tokenized)


def test_directory_mixing_formats_detects_each_file(tokenizer, tmp_path, prompt_completion_parquet):
    for name in ("messages.jsonl", "alpaca.csv"):
        shutil.copy(ASSETS / name, tmp_path / name)
    examples, report = load_conversations(str(tmp_path))
    assert dict(report.formats) == {"alpaca": 3, "messages": 2, "prompt_completion": 2}
    assert [(Path(e.source).name, e.line) for e in examples] == [
        ("alpaca.csv", 2), ("alpaca.csv", 3), ("alpaca.csv", 4), ("messages.jsonl", 1), ("messages.jsonl", 2),
        ("pc.parquet", 1), ("pc.parquet", 2)]


def test_several_sources_in_one_call():
    examples, report = load_conversations([str(ASSETS / "messages.jsonl"), str(ASSETS / "sharegpt.json")])
    assert (report.rows_read, len(examples), dict(report.formats)) == (4, 4, {"messages": 2, "sharegpt": 2})


# Line 2 of messages.jsonl renders to 57 tokens; its replies sit at positions 34-36 and 53-55.
def multi_turn_example():
    examples, _ = load_conversations(str(ASSETS / "messages.jsonl"))
    return [examples[1]]


def test_truncate_keeps_the_start_and_the_labels_inside(tokenizer):
    full, _ = tokenize_examples(tokenizer, multi_turn_example(), max_length=1024)
    assert full[0].num_tokens == 57
    tokenized, report = tokenize_examples(tokenizer, multi_turn_example(), max_length=54)
    (ex,) = tokenized
    assert ex.input_ids == full[0].input_ids[:54] and ex.labels == full[0].labels[:54]
    assert [(i, x) for i, x in enumerate(ex.labels) if x != IGNORE_INDEX] == [(34, 36), (35, 30), (36, IM_END),
                                                                              (53, 38)]
    assert (report.over_max_length, report.truncated, report.rows_skipped) == (1, 1, 0)


def test_drop_removes_overlong_examples_and_counts_them(tokenizer):
    tokenized, report = tokenize_examples(tokenizer, multi_turn_example(), max_length=54, overlong="drop")
    assert tokenized == []
    assert (dict(report.skipped), report.over_max_length, report.truncated) == ({"too_long": 1}, 1, 0)
    assert report.rejects[0]["message"] == "57 tokens > max_length 54"
    assert report.rejects[0]["line"] == 2


def test_examples_left_without_trained_tokens_are_dropped_and_counted(tokenizer):
    examples, _ = load_conversations(str(ASSETS / "messages.jsonl"))
    tokenized, report = tokenize_examples(tokenizer, examples, max_length=30)
    # Line 1 (27 tokens) fits; line 2 keeps only prompt tokens within 30.
    assert [(t.line, trained_ids(t)) for t in tokenized] == [(1, [38634, 30, IM_END])]
    assert (dict(report.skipped), report.over_max_length, report.truncated) == ({"no_trained_tokens": 1}, 1, 0)
    assert report.rejects[0]["reason"] == "no_trained_tokens" and report.rejects[0]["line"] == 2


def test_skip_mode_counts_by_reason_and_writes_rejects(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        b'{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}\n'
        b'{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": ""}]}\n'
        b'not json\n'
        b'{"messages": [{"role": "user", "content": "Q"}]}\n'
        b'{"question": "q"}\n'
        b'{"messages": [{"role": "user", "content": "\xe9"}, {"role": "assistant", "content": "A"}]}\n')
    examples, report = load_conversations(str(path), on_bad_row="skip")
    assert [e.line for e in examples] == [1]
    assert (report.rows_read, report.rows_skipped) == (6, 5)
    # Line 5 is judged as the file's format (messages, from line 1): a missing field, not an unknown schema.
    assert dict(report.skipped) == {"empty_assistant": 1, "malformed_json": 1, "no_final_assistant": 1,
                                    "missing_field": 1, "bad_encoding": 1}
    rejects = tmp_path / "rejects.jsonl"
    report.write_rejects(rejects)
    lines = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in lines] == [(2, "empty_assistant"), (3, "malformed_json"),
                                                         (4, "no_final_assistant"), (5, "missing_field"),
                                                         (6, "bad_encoding")]
    assert lines[1] == {"source": str(path), "line": 3, "reason": "malformed_json", "row": "not json",
                        "message": "malformed JSON (Expecting value at column 1): fix or remove this line"}


def test_error_mode_stops_at_the_first_bad_row_naming_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"instruction": "I", "output": "O"}\n{"instruction": "I"}\n')
    with pytest.raises(UserError) as info:
        load_conversations(str(path))
    # The file was detected as Alpaca from line 1, so line 2 is reported as a missing field.
    assert str(info.value) == (f"{path}:2: missing `output` (format alpaca needs instruction, output) "
                               "(or run with --skip-bad-rows)")


def test_no_usable_rows_is_an_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "q"}\n')
    with pytest.raises(UserError) as info:
        load_conversations(str(path), on_bad_row="skip")
    assert str(info.value) == (f"no usable rows in {path} (1 read, 1 skipped: {{'unknown_schema': 1}}); "
                               "fix the data")


@pytest.mark.parametrize("kwargs, message", [
    ({"overlong": "cut"}, "unknown overlong policy 'cut': use truncate or drop"),
    ({"train_on": "first"}, "unknown train_on 'first': use all or last"),
])
def test_bad_policies_are_user_errors(tokenizer, kwargs, message):
    with pytest.raises(UserError) as info:
        tokenize_examples(tokenizer, multi_turn_example(), max_length=64, **kwargs)
    assert str(info.value) == message


def test_unknown_format_is_a_user_error():
    with pytest.raises(UserError) as info:
        load_conversations(str(ASSETS / "messages.jsonl"), fmt="xml")
    assert str(info.value) == ("unknown data format 'xml': use auto, messages, sharegpt, alpaca, prompt_completion, "
                               "bigbench")


def test_template_error_names_the_row(tokenizer, monkeypatch):
    monkeypatch.setattr(tokenizer, "chat_template", "{{ raise_exception('no') }}")
    with pytest.raises(UserError) as info:
        tokenize_examples(tokenizer, multi_turn_example(), max_length=64)
    assert str(info.value).startswith(f"{ASSETS / 'messages.jsonl'}:2: the chat template of ")


def test_split_indices_is_seeded_and_disjoint():
    train, val, test = split_indices(10, 0.2, 0.1, seed=0)
    assert (len(train), len(val), len(test)) == (7, 2, 1)
    assert sorted(train + val + test) == list(range(10))
    assert split_indices(10, 0.2, 0.1, seed=0) == (train, val, test)
    assert split_indices(10, 0.2, 0.1, seed=1) != (train, val, test)
    with pytest.raises(UserError):
        split_indices(2, 0.5, 0.5, seed=0)


def test_report_rejects_with_non_json_values(tmp_path):
    import datetime

    report = DataReport()
    report.reject("bad_type", "m", "s.parquet", 1, {"when": datetime.date(2024, 1, 2)})
    report.write_rejects(tmp_path / "r.jsonl")
    assert json.loads((tmp_path / "r.jsonl").read_text())["row"] == {"when": "2024-01-02"}
