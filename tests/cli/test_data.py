"""`sftkit data inspect` / `sftkit data fetch` through `sftkit.cli.main`: exact trained text for each format,
and every kind of bad input ends in exit code 2 with one line naming file and line, never a traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from sftkit import cli

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "data"
GOOD = b'{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}\n'


@pytest.fixture
def run(run_cli, tokenizer):
    """The in-process CLI, with the default model's tokenizer already converted."""
    return run_cli


def inspect_json(run, *args: str) -> dict:
    code, out, err = run("data", "inspect", *args, "--json", "--examples", "10")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("name, formats, trained_text", [
    ("messages.jsonl", {"messages": 2}, [["Paris.<|im_end|>"], ["4.<|im_end|>", "6.<|im_end|>"]]),
    ("sharegpt.json", {"sharegpt": 2}, [["Blue.<|im_end|>", "Green.<|im_end|>"], ["Hi!<|im_end|>"]]),
    ("alpaca.csv", {"alpaca": 3}, [["Bonjour<|im_end|>"], ["[2, 3, 5]<|im_end|>"], ["Line one\nLine two<|im_end|>"]]),
])
def test_inspect_reports_exactly_the_assistant_replies(run, tokenizer, name, formats, trained_text):
    result = inspect_json(run, str(ASSETS / name))
    assert result["formats"] == formats
    assert [ex["trained_text"] for ex in result["examples"]] == trained_text
    # Nothing else is trained: the trained token count is that of the replies and their <|im_end|>.
    assert [ex["num_trained_tokens"] for ex in result["examples"]] == [
        sum(len(tokenizer.encode(seg, add_special_tokens=False)) for seg in segs) for segs in trained_text]
    assert (result["rows_skipped"], result["examples_kept"]) == (0, len(trained_text))


def test_inspect_statistics(run):
    result = inspect_json(run, str(ASSETS / "messages.jsonl"), "--max-length", "54")
    assert (result["num_over_max_length"], result["num_truncated"]) == (1, 1)
    assert result["total_tokens"] == {"count": 2, "min": 27, "mean": 40.5, "p50": 54, "p95": 54, "max": 54,
                                      "total": 81}
    assert result["trained_tokens"]["total"] == 3 + 4


BAD_INPUTS = [
    ("malformed.jsonl", GOOD + b'{"messages": [}\n', 2,
     "malformed JSON (Expecting value at column 15): fix or remove this line"),
    ("missing.jsonl", GOOD + b'{"messages": [{"role": "user"}, {"role": "assistant", "content": "A"}]}\n', 2,
     "message 1 needs `role` and `content` (got role)"),
    ("unknown.jsonl", b'{"question": "Q", "answer": "A"}\n', 1,
     "unrecognised fields (answer, question); expected `messages` (role/content list), `conversations` "
     "(ShareGPT from/value), `instruction`+`output` (Alpaca), `prompt`+`completion`, or "
     "`input`+`target`/`target_scores` (BIG-bench)"),
    ("role.jsonl", GOOD + b'{"messages": [{"role": "user", "content": "Q"}, {"role": "bot", "content": "A"}]}\n', 2,
     "message 2 has unknown role 'bot'; use system, user, assistant or tool"),
    ("empty_reply.jsonl", GOOD + b'{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", '
                                 b'"content": ""}]}\n', 2,
     "message 2 (assistant) is empty: give the reply or drop the row"),
    ("no_reply.jsonl", GOOD + b'{"messages": [{"role": "user", "content": "Q"}]}\n', 2,
     "conversation does not end with an assistant turn: add the reply or remove the trailing turn"),
    ("latin1.jsonl", GOOD + b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n', 2,
     "not valid UTF-8 (byte 46): re-save the file as UTF-8"),
]


@pytest.mark.parametrize("name, content, line, message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_naming_file_and_line(run, tmp_path, name, content, line, message):
    path = tmp_path / name
    path.write_bytes(content)
    code, out, err = run("data", "inspect", str(path), "--json")
    assert (code, out) == (2, "")
    assert err == f"error: {path}:{line}: {message} (or run with --skip-bad-rows)\n"


def test_empty_file_exits_2_naming_the_file(run, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert run("data", "inspect", str(path)) == (2, "", f"error: {path}: file is empty: add at least one example\n")


def test_bad_option_value_exits_2(run):
    code, out, err = run("data", "inspect", str(ASSETS / "messages.jsonl"), "--overlong", "cut")
    assert (code, err) == (2, "error: unknown overlong policy 'cut': use truncate or drop\n")


def test_skip_bad_rows_counts_by_reason_and_writes_rejects(run, tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(GOOD + b"".join(content.removeprefix(GOOD) for _, content, _, _ in BAD_INPUTS) + GOOD)
    rejects = tmp_path / "rejects.jsonl"
    result = inspect_json(run, str(path), "--skip-bad-rows", "--rejects", str(rejects))
    assert (result["rows_read"], result["rows_skipped"], result["examples_kept"]) == (9, 7, 2)
    # unknown.jsonl's row is judged as this file's format (messages): a missing `messages` field.
    assert result["skipped_by_reason"] == {"malformed_json": 1, "missing_field": 2, "unknown_role": 1,
                                           "empty_assistant": 1, "no_final_assistant": 1, "bad_encoding": 1}
    assert [ex["line"] for ex in result["examples"]] == [1, 9]
    written = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in written] == [
        (2, "malformed_json"), (3, "missing_field"), (4, "missing_field"), (5, "unknown_role"),
        (6, "empty_assistant"), (7, "no_final_assistant"), (8, "bad_encoding")]
    assert written[2]["row"] == {"question": "Q", "answer": "A"}


def test_every_row_bad_still_writes_the_rejects(run, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    rejects = tmp_path / "rejects.jsonl"
    code, out, err = run("data", "inspect", str(path), "--skip-bad-rows", "--rejects", str(rejects))
    assert code == 2 and "no usable rows" in err and str(rejects) in err.replace("\n", "")
    written = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in written] == [(1, "no_final_assistant"), (2, "malformed_json")]


def test_human_output_prints_the_table_and_highlights_trained_tokens(run, monkeypatch):
    monkeypatch.setattr(cli.root, "out", Console(force_terminal=True, color_system="standard", width=100))
    code, out, err = run("data", "inspect", str(ASSETS / "messages.jsonl"), "--examples", "1")
    assert (code, err) == (0, "")
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert "data inspect (messages: 2)" in plain
    assert "rows read" in plain and "examples kept" in plain
    assert f"{ASSETS / 'messages.jsonl'}:1  3/27 tokens trained (highlighted)" in plain
    trained = "\x1b[1;30;42m"  # bold black on green
    assert f"{trained}Paris\x1b[0m{trained}.\x1b[0m{trained}<|im_end|>\x1b[0m" in out
    assert out.count(trained) == 3


def test_fetch_cli_uses_the_cache(run):
    code, out, err = run("data", "fetch", "bigbench", "general_knowledge")
    assert (code, err) == (0, "")
    assert out.startswith("bigbench:general_knowledge  70 examples  (1 file(s) under")


def test_console_script_prints_no_traceback(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(GOOD + b"{oops\n")
    proc = subprocess.run([sys.executable, "-m", "sftkit.cli", "data", "inspect", str(path), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.splitlines()[-1] == (f"error: {path}:2: malformed JSON (Expecting property name enclosed in "
                                            "double quotes at column 2): fix or remove this line (or run with "
                                            "--skip-bad-rows)")
    assert "Traceback" not in proc.stderr
