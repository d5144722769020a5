"""Readers: every row keeps its source and 1-based line; unparseable rows come back as BadRow, file-level
problems raise UserError naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sftkit.data.readers import iter_rows
from sftkit.data.rows import Row
from sftkit.errors import UserError

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "data"


def rows(spec) -> list:
    return list(iter_rows(str(spec)))


def test_jsonl_rows_keep_line_numbers_across_blank_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n\n  \n{"prompt": "c", "completion": "d"}\n')
    got = rows(path)
    assert [(r.line, r.data) for r in got] == [(1, {"prompt": "a", "completion": "b"}),
                                               (4, {"prompt": "c", "completion": "d"})]
    assert {r.source for r in got} == {str(path)}


def test_jsonl_with_utf8_bom_and_crlf(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "a", "completion": "b"}\r\n{"prompt": "c", "completion": "d"}\r\n')
    assert [(r.line, r.data["prompt"]) for r in rows(path)] == [(1, "a"), (2, "c")]


def test_jsonl_bad_lines_become_bad_rows(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"prompt": "a", "completion": "b"}\n{"prompt": "a",,}\n[1, 2]\n{"prompt": "\xff"}\n')
    got = rows(path)
    assert isinstance(got[0], Row)
    assert [(b.reason, b.line) for b in got[1:]] == [("malformed_json", 2), ("not_an_object", 3),
                                                      ("bad_encoding", 4)]
    assert got[1].message == ("malformed JSON (Expecting property name enclosed in double quotes at column 16): "
                              "fix or remove this line")
    assert got[1].raw == '{"prompt": "a",,}'
    assert got[3].message == "not valid UTF-8 (byte 12): re-save the file as UTF-8"


def test_json_list_and_wrapped_list():
    got = rows(ASSETS / "sharegpt.json")
    assert [r.line for r in got] == [1, 2]
    assert got[1].data == {"conversations": [{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "Hi!"}]}


def test_json_object_with_data_key(tmp_path):
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"data": [{"prompt": "p", "completion": "c"}, "oops"]}))
    got = rows(path)
    assert got[0].data == {"prompt": "p", "completion": "c"}
    assert (got[1].reason, got[1].line) == ("not_an_object", 2)


def test_csv_lines_multiline_cells_and_text_that_looks_like_json():
    got = rows(ASSETS / "alpaca.csv")
    # A record's line is the line it starts on; the quoted two-line cell starts on line 4.
    assert [r.line for r in got] == [2, 3, 4]
    assert got[0].data == {"instruction": "Translate to French", "input": "Good morning", "output": "Bonjour"}
    assert got[1].data["output"] == "[2, 3, 5]"  # an answer, not a list
    assert got[2].data["output"] == "Line one\nLine two"


def test_csv_decodes_json_in_structured_columns_and_keeps_unicode_separators(tmp_path):
    path = tmp_path / "m.csv"
    messages = [{"role": "user", "content": "a\u2028b"}, {"role": "assistant", "content": "c"}]
    path.write_text('id,messages\n7,"' + json.dumps(messages, ensure_ascii=False).replace('"', '""') + '"\n',
                    encoding="utf-8")
    got = rows(path)
    assert len(got) == 1
    assert got[0].data == {"id": "7", "messages": messages}


def test_csv_row_with_extra_values_is_a_bad_row(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("prompt,completion\na,b\nc,d,e\n")
    got = rows(path)
    assert (got[1].reason, got[1].line) == ("malformed_csv", 3)


def test_parquet_rows(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": "Hi", "completion": "Hello"},
                                         {"prompt": "Bye", "completion": "Goodbye"}]), path)
    got = rows(path)
    assert [(r.line, r.data) for r in got] == [(1, {"prompt": "Hi", "completion": "Hello"}),
                                               (2, {"prompt": "Bye", "completion": "Goodbye"})]


def test_directory_reads_supported_files_in_sorted_order(tmp_path):
    (tmp_path / "b.jsonl").write_text('{"prompt": "1", "completion": "2"}\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.json").write_text('[{"prompt": "3", "completion": "4"}]')
    (tmp_path / "a.csv").write_text("prompt,completion\n5,6\n")
    (tmp_path / "notes.txt").write_text("ignored")
    got = rows(tmp_path)
    assert [(Path(r.source).name, r.line, r.data["prompt"]) for r in got] == [
        ("a.csv", 2, "5"), ("b.jsonl", 1, "1"), ("c.json", 1, "3")]


def test_bigbench_task_json_by_path_carries_task_prefix():
    got = rows(ASSETS / "bigbench_task.json")
    assert [r.line for r in got] == [1, 2]
    assert got[0].data == {"input": "1 + 1 =", "target": ["2", "two"]}
    assert got[0].extra["task_prefix"] == "Answer briefly.\n"


@pytest.mark.parametrize("name, content, message", [
    ("empty.jsonl", b"", "file is empty: add at least one example"),
    ("blank.jsonl", b"\n \n", "file has no rows (only blank lines): add at least one example"),
    ("header.csv", b"prompt,completion\n", "CSV has a header but no rows: add at least one example"),
    ("empty.json", b"[]", "file has no rows: add at least one example"),
    ("scalar.json", b"3", "expected a JSON list of objects (or JSONL, one object per line)"),
    ("notes.txt", b"hi", "unsupported file type '.txt': use one of .jsonl, .json, .csv, .parquet"),
])
def test_file_level_problems_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError) as info:
        rows(path)
    assert str(info.value) == f"{path}: {message}"


@pytest.mark.parametrize("name, content, line, message", [
    ("broken.json", b'[\n{"a": 1},\n{"a": }\n]', 3, "malformed JSON (Expecting value at column 7): fix the file"),
    ("latin1.csv", b"prompt,completion\nna\xefve,ok\n", 2, "not valid UTF-8: re-save the file as UTF-8"),
])
def test_whole_file_parse_errors_name_file_and_line(tmp_path, name, content, line, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError) as info:
        rows(path)
    assert str(info.value) == f"{path}:{line}: {message}"


def test_missing_path(tmp_path):
    with pytest.raises(UserError) as info:
        rows(tmp_path / "nope.jsonl")
    assert str(info.value) == f"{tmp_path / 'nope.jsonl'}: file not found: check the path (or use bigbench:TASK, " \
                              "or hf:ORG/NAME)"
