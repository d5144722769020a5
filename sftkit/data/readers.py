"""Read rows from JSONL, JSON, CSV, Parquet, directories, Hugging Face dataset ids and `bigbench:` tasks.

Every row carries where it came from (`source`, 1-based `line`) so that any later error can name it. A row
that cannot even be parsed (malformed JSON, bad bytes) comes back as a `BadRow` instead of raising, so the
caller decides between failing and skipping (`on_bad_row`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

from sftkit.data.bigbench import iter_bigbench_rows
from sftkit.data.rows import BadRow, Row
from sftkit.errors import UserError
from sftkit.paths import check_input, local_data_path

FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def iter_rows(spec: str) -> Iterator[Row | BadRow]:
    """Rows of a file, a directory of files, `bigbench:TASK`, or a Hugging Face dataset id (`hf:` optional).

    Raises:
        UserError: the path does not exist, is empty, or has an unsupported suffix.
    """
    if spec.startswith("bigbench:"):
        yield from iter_bigbench_rows(spec.split(":", 1)[1])
        return
    path = local_data_path(spec)
    if path is None:
        yield from _iter_hub_dataset(spec.removeprefix("hf:"))
        return
    if not path.exists():
        raise UserError("file not found: check the path (or use bigbench:TASK, or hf:ORG/NAME)", source=spec)
    check_input(path, "data path")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in FILE_SUFFIXES and p.is_file())
        if not files:
            raise UserError(f"no {', '.join(FILE_SUFFIXES)} files in this directory", source=str(path))
        for file in files:
            yield from _iter_file(file)
        return
    yield from _iter_file(path)


def _iter_file(path: Path) -> Iterator[Row | BadRow]:
    if path.suffix not in FILE_SUFFIXES:
        raise UserError(f"unsupported file type {path.suffix!r}: use one of {', '.join(FILE_SUFFIXES)}", str(path))
    check_input(path, "data file")
    if path.stat().st_size == 0:
        raise UserError("file is empty: add at least one example", source=str(path))
    if path.suffix == ".jsonl":
        yield from _iter_jsonl(path)
    elif path.suffix == ".json":
        yield from _iter_json(path)
    elif path.suffix == ".csv":
        yield from _iter_csv(path)
    else:
        yield from _iter_parquet(path)


def _iter_jsonl(path: Path) -> Iterator[Row | BadRow]:
    source = str(path)
    seen = 0
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield BadRow("bad_encoding", f"not valid UTF-8 (byte {exc.start}): re-save the file as UTF-8",
                             source, line_no, raw.decode("utf-8", "replace"))
                continue
            if line_no == 1:
                text = text.removeprefix("\ufeff")  # editors on Windows write a UTF-8 BOM
            if not text.strip():
                continue
            seen += 1
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                yield BadRow("malformed_json", f"malformed JSON ({exc.msg} at column {exc.colno}): fix or remove "
                             "this line", source, line_no, text.rstrip("\n"))
                continue
            if not isinstance(data, dict):
                yield BadRow("not_an_object", f"expected a JSON object per line, got {type(data).__name__}",
                             source, line_no, text.rstrip("\n"))
                continue
            yield Row(data, source, line_no)
    if seen == 0:
        raise UserError("file has no rows (only blank lines): add at least one example", source=source)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise UserError("not valid UTF-8: re-save the file as UTF-8", str(path), line) from None


def _iter_json(path: Path) -> Iterator[Row | BadRow]:
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"malformed JSON ({exc.msg} at column {exc.colno}): fix the file", str(path), exc.lineno) from None
    if isinstance(data, dict) and "examples" in data:  # a BIG-bench task.json given by path
        from sftkit.data.bigbench import rows_from_task

        yield from rows_from_task(data, str(path))
        return
    if isinstance(data, dict):
        for key in ("data", "rows", "train"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        raise UserError("expected a JSON list of objects (or JSONL, one object per line)", str(path))
    if not data:
        raise UserError("file has no rows: add at least one example", str(path))
    for index, item in enumerate(data, start=1):
        if isinstance(item, dict):
            yield Row(item, str(path), index)
        else:
            yield BadRow("not_an_object", f"item {index} is a {type(item).__name__}, expected an object",
                         str(path), index, json.dumps(item)[:200])


def _iter_csv(path: Path) -> Iterator[Row | BadRow]:
    text = _read_text(path)
    # newline="" lets the csv module see quoted newlines; str.splitlines would also split on \u2028 etc.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise UserError("CSV has no header row: the first line must name the columns", str(path), 1)
    count = 0
    end_of_previous = reader.line_num
    for row in reader:
        count += 1
        line = end_of_previous + 1  # a quoted cell may span lines; name the line the record starts on
        end_of_previous = reader.line_num
        if None in row:
            yield BadRow("malformed_csv", "more values than header columns: quote fields that contain commas",
                         str(path), line, str(row))
            continue
        data = {k: _decode_cell(k, v) for k, v in row.items()}
        yield Row(data, str(path), line)
    if count == 0:
        raise UserError("CSV has a header but no rows: add at least one example", str(path))


# Columns whose cells may hold JSON (a message list, BIG-bench scores or targets). Other columns stay text, so
# an answer such as "[2, 3, 5]" is trained as written rather than turned into a list.
_JSON_COLUMNS = {"messages": (list,), "conversations": (list,), "target_scores": (dict,), "target": (list,),
                 "prompt": (list,), "completion": (list,)}


def _decode_cell(column: str, value: str | None):
    kinds = _JSON_COLUMNS.get(column)
    if kinds and value and value.lstrip()[:1] in "[{":
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return value
        if column in ("prompt", "completion") and not all(isinstance(m, dict) for m in decoded or [None]):
            return value
        return decoded if isinstance(decoded, kinds) else value
    return value


def _iter_parquet(path: Path) -> Iterator[Row | BadRow]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise UserError(f"cannot read Parquet: {exc}", str(path)) from None
    if table.num_rows == 0:
        raise UserError("Parquet file has no rows: add at least one example", str(path))
    for index, data in enumerate(table.to_pylist(), start=1):
        yield Row(data, str(path), index)


def _iter_hub_dataset(dataset_id: str) -> Iterator[Row | BadRow]:
    """A Hugging Face dataset: `org/name` or `org/name:split` (default split `train`)."""
    import datasets

    name, _, split = dataset_id.partition(":")
    try:
        dataset = datasets.load_dataset(name, split=split or "train")
    except Exception as exc:  # network, missing dataset, bad split: all user-fixable
        raise UserError(f"cannot load Hugging Face dataset: {str(exc).splitlines()[0]}", dataset_id) from None
    for index, data in enumerate(dataset, start=1):
        yield Row(dict(data), dataset_id, index)
