"""Preference pairs: every schema in every file type, counted bad rows with file:line, reply-only labels."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sftkit.data.dataset import DataReport
from sftkit.data.preferences import PreferencePair, load_preferences, tokenize_pairs
from sftkit.data.chat_labels import IGNORE_INDEX
from sftkit.errors import UserError

USER = {"role": "user", "content": "Capital of France?"}
PROMPT = [USER]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def as_tuple(pair: PreferencePair):
    return pair.prompt, pair.chosen, pair.rejected, pair.line


def test_every_schema_in_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Rome."},
        {"prompt": PROMPT, "chosen": [{"role": "assistant", "content": "Paris."}], "rejected": "Rome."},
        {"messages": PROMPT, "chosen": {"role": "assistant", "content": "Paris."},
         "rejected": {"role": "assistant", "content": "Rome."}},
        {"chosen": [USER, {"role": "assistant", "content": "Paris."}],
         "rejected": [USER, {"role": "assistant", "content": "Rome."}]},
        {"prompt": PROMPT, "chosen": [USER, {"role": "assistant", "content": "Paris."}], "rejected": "Rome."},
    ])
    pairs, report = load_preferences(str(path))
    assert [as_tuple(p) for p in pairs] == [(PROMPT, "Paris.", "Rome.", i) for i in range(1, 6)]
    assert dict(report.formats) == {"prompt": 3, "messages": 1, "implicit": 1}


def test_json_csv_parquet(tmp_path):
    system = {"role": "system", "content": "Be brief."}
    row = {"messages": [system, USER], "chosen": "Paris.", "rejected": "Rome."}
    (tmp_path / "p.json").write_text(json.dumps([row]))
    with open(tmp_path / "p.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["messages", "chosen", "rejected"])
        writer.writerow([json.dumps([system, USER]), json.dumps([{"role": "assistant", "content": "Paris."}]),
                         "[Rome, Milan]"])  # a reply that merely looks like JSON stays text
    pq.write_table(pa.Table.from_pylist([{"prompt": "Capital of France?", "chosen": "Paris.",
                                          "rejected": "Rome."}]), tmp_path / "p.parquet")
    pairs, _ = load_preferences(str(tmp_path))  # a directory of all three
    got = sorted((Path(p.source).suffix, p.prompt, p.chosen, p.rejected, p.line) for p in pairs)
    assert got == [(".csv", [system, USER], "Paris.", "[Rome, Milan]", 2),
                   (".json", [system, USER], "Paris.", "Rome.", 1),
                   (".parquet", PROMPT, "Paris.", "Rome.", 1)]


BAD_ROWS = [
    ({"prompt": "Hi?", "chosen": "Hello."}, "missing_field"),
    ({"prompt": "Hi?", "chosen": "Same.", "rejected": " Same. "}, "identical_responses"),
    ({"chosen": [USER, {"role": "assistant", "content": "a"}],
      "rejected": [{"role": "user", "content": "Other?"}, {"role": "assistant", "content": "b"}]}, "prompt_mismatch"),
    ({"prompt": "Hi?", "chosen": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}],
      "rejected": "c"}, "not_final_turn"),
    ({"messages": [USER, {"role": "assistant", "content": "Paris."}], "chosen": "a", "rejected": "b"},
     "prompt_not_user_last"),
    ({"prompt": "Hi?", "chosen": "", "rejected": "b"}, "empty_assistant"),
    ({"prompt": 3, "chosen": "a", "rejected": "b"}, "bad_type"),
    ("{not json", "malformed_json"),
]


def test_bad_rows_error_names_file_and_line(tmp_path):
    for index, (row, _) in enumerate(BAD_ROWS):
        path = write_jsonl(tmp_path / f"bad{index}.jsonl", [{"prompt": "Hi?", "chosen": "a", "rejected": "b"}, row])
        with pytest.raises(UserError) as err:
            load_preferences(str(path))
        assert err.value.source == str(path) and err.value.line == 2


def test_bad_rows_skipped_counted_and_rejected(tmp_path):
    good = {"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."}
    path = write_jsonl(tmp_path / "mixed.jsonl", [good] + [row for row, _ in BAD_ROWS])
    pairs, report = load_preferences(str(path), on_bad_row="skip")
    assert len(pairs) == 1 and report.rows_read == 1 + len(BAD_ROWS)
    assert dict(report.skipped) == {reason: 1 for _, reason in BAD_ROWS}
    report.write_rejects(tmp_path / "rejects.jsonl")
    rejects = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == list(range(2, 2 + len(BAD_ROWS)))


def test_labels_mark_only_the_reply_and_end_of_turn(tokenizer):
    pair = PreferencePair([{"role": "system", "content": "Be brief."}, USER,
                           {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And Italy?"}],
                          "Rome.", "I cannot answer questions about capitals.", "x", 1)
    (tok,), _ = tokenize_pairs(tokenizer, [pair], 512)
    for side, text in ((tok.chosen, "Rome."), (tok.rejected, "I cannot answer questions about capitals.")):
        trained = [t for t in side.labels if t != IGNORE_INDEX]
        assert tokenizer.decode(trained) == text + "<|im_end|>"  # the earlier assistant turn is not trained
        assert all(label in (IGNORE_INDEX, tid) for tid, label in zip(side.input_ids, side.labels))
    prompt_len = tok.chosen.labels.index(next(t for t in tok.chosen.labels if t != IGNORE_INDEX))
    assert tok.chosen.input_ids[:prompt_len] == tok.rejected.input_ids[:prompt_len]


def test_length_policy_counts_pairs(tokenizer):
    long_prompt = "word " * 200
    pairs = [PreferencePair([{"role": "user", "content": "Short?"}], "Yes " * 100, "No.", "x", 1),
             PreferencePair([{"role": "user", "content": long_prompt}], "Yes.", "No.", "x", 2),
             PreferencePair([{"role": "user", "content": "Short?"}], "Yes.", "No.", "x", 3)]
    kept, report = tokenize_pairs(tokenizer, pairs, 64, "truncate", DataReport())
    assert [p.line for p in kept] == [1, 3]
    assert (report.over_max_length, report.truncated, dict(report.skipped)) == (2, 1, {"no_trained_tokens": 1})
    assert len(kept[0].chosen.input_ids) == 64 and len(kept[0].rejected.input_ids) < 64
    kept, report = tokenize_pairs(tokenizer, pairs, 64, "drop", DataReport())
    assert [p.line for p in kept] == [3]
    assert dict(report.skipped) == {"too_long": 2}
