"""The bad-input corpus: malformed data files, configs and `--set` values, through the CLI in process.

Every case must end in exit code 2 with one line that names the file and, where there is one, the line, and
no traceback, before any model loads. Wrong paths are in tests/test_bad_paths.py; the rows every data format
rejects, and the multi-problem config report, are in tests/test_cli_data.py and tests/test_config.py.
"""

from __future__ import annotations

import pytest

from tests.bad_input_cases import GOOD, materialize

J = "{tmp}/x.jsonl"
Y = "{tmp}/x.yaml"
USER = '{"role": "user", "content": "Q"}'
REPLY = '{"role": "assistant", "content": "A"}'


def data(name: str, content: str | bytes, line: int | None, message: str, *args: str):
    """`data inspect` of one file; the error must be `FILE:LINE: message`."""
    where = f"{{tmp}}/{name}" + (f":{line}" if line else "")
    return ({name: content}, ["data", "inspect", f"{{tmp}}/{name}", *args], f"{where}: {message}")


def config(content: str | bytes, line: int | None, message: str, *args: str, command: str = "train"):
    """`train x.yaml` (or `dpo`); the error must be `x.yaml[:LINE]: message`."""
    return ({"x.yaml": content}, [command, Y, *args], Y + (f":{line}" if line else "") + f": {message}")


def override(message: str, *sets: str):
    """`train good.yaml --set ...`; the error must name the --set item or the key."""
    return ({}, ["train", "{tmp}/good.yaml", *[a for s in sets for a in ("--set", s)]], message)


CASES = {
    # ---- data files ------------------------------------------------------------------------------------
    "jsonl-line-is-a-list": data("x.jsonl", GOOD + "[1, 2]\n", 2, "expected a JSON object per line, got list"),
    "jsonl-nul-byte": data("x.jsonl", GOOD + GOOD.replace("]}", "]\x00}"), 2, "malformed JSON"),
    "jsonl-bad-bytes-line-3": data("x.jsonl", (GOOD * 2).encode() + b"\xff\xfe\n", 3, "not valid UTF-8 (byte 0)"),
    "messages-is-a-string": data("x.jsonl", GOOD + '{"messages": "hi"}\n', 2, "missing `messages` list"),
    "messages-empty": data("x.jsonl", '{"messages": []}\n', 1, "conversation has no messages"),
    "content-is-a-number": data("x.jsonl", GOOD + '{"messages": [{"role": "user", "content": 5}, ' + REPLY + "]}\n",
                                2, "message 1 content must be a string, got int"),
    "role-is-a-number": data("x.jsonl", '{"messages": [{"role": 1, "content": "Q"}, ' + REPLY + "]}\n", 1,
                             "message 1 has unknown role 1"),
    "reply-before-question": data("x.jsonl", '{"messages": [' + REPLY + ", " + USER + ", " + REPLY + "]}\n", 1,
                                  "message 1 is an assistant turn; the conversation must open with a user turn"),
    "system-turn-mid-conversation": data("x.jsonl", '{"messages": [' + USER + ', {"role": "system", "content": '
                                         '"S"}, ' + REPLY + "]}\n", 1,
                                         "message 2 is a system turn; only the first message may be system"),
    "sharegpt-unknown-speaker": data("x.jsonl", '{"conversations": [{"from": "human", "value": "Q"}, {"from": '
                                     '"robot", "value": "A"}]}\n', 1, "turn 2 has unknown `from` 'robot'"),
    "alpaca-instruction-is-a-number": data("x.jsonl", '{"instruction": 5, "output": "b"}\n', 1,
                                           "`instruction` and `input` must be strings"),
    "completion-is-a-number": data("x.jsonl", '{"prompt": "P", "completion": 3}\n', 1,
                                   "message 2 content must be a string, got int"),
    "json-list-item-is-a-number": data("x.json", '[{"instruction": "a", "output": "b"},\n7]', 2,
                                       "item 2 is a int, expected an object"),
    "json-bad-bytes-line-2": data("x.json", b'[{"instruction": "a", "output": "b"},\n{"instruction": "\xe9"}]', 2,
                                  "not valid UTF-8"),
    "bigbench-example-without-input": data("x.json", '{"examples": [{"target": "x"}]}', 1,
                                           "unrecognised fields (target)"),
    "csv-more-values-than-columns": data("x.csv", "instruction,output\nhi,there\nx,y,z\n", 3,
                                         "more values than header columns"),
    "parquet-corrupt": data("x.parquet", b"PAR1garbagePAR1", None, "cannot read Parquet"),
    "parquet-number-column": data("x.parquet", {"instruction": ["a"], "output": [3]}, 1,
                                  "message 2 content must be a string, got int"),
    "parquet-messages-column-of-numbers": data("x.parquet", {"messages": [1]}, 1, "unrecognised fields (messages)"),
    # ---- tool calls (docs/tools.md) -------------------------------------------------------------------
    "tool-arguments-not-json": data("x.jsonl", GOOD + '{"messages": [' + USER + ', {"role": "assistant", '
                                    '"tool_calls": [{"function": {"name": "f", "arguments": "{city: 1}"}}]}]}\n', 2,
                                    "message 2 call 1 (f) arguments: not valid JSON"),
    "tool-result-answers-no-call": data("x.jsonl", '{"messages": [' + USER + ', {"role": "tool", "content": "9"}, '
                                        + REPLY + "]}\n", 1, "message 2 is a tool result that answers no call"),
    "tool-not-in-tools": data("x.jsonl", '{"tools": [{"name": "g"}], "messages": [' + USER + ', {"role": '
                              '"assistant", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}]}\n', 1,
                              "message 2 calls 'f', which is not in the row's `tools` (g)"),
    "tool-call-id-mismatch": data("x.jsonl", '{"messages": [' + USER + ', {"role": "assistant", "tool_calls": [{'
                                  '"id": "a", "function": {"name": "f", "arguments": {}}}]}, {"role": "tool", '
                                  '"tool_call_id": "b", "content": "9"}, ' + REPLY + "]}\n", 1,
                                  "message 3: tool_call_id 'b' matches no open call (open: a)"),
    "train-data-malformed": ({"x.jsonl": GOOD + '{"messages": [}\n'},
                             ["train", "{tmp}/good.yaml", "--set", f"data.train_path={J}"], J + ":2: malformed JSON"),
    "dpo-pair-without-rejected": ({"x.jsonl": '{"prompt": "P", "chosen": "A", "rejected": "B"}\n'
                                              '{"prompt": "P", "chosen": "A"}\n'},
                                  ["dpo", "{tmp}/good.yaml", "--set", f"data.train_path={J}"],
                                  J + ":2: missing `rejected` (got chosen, prompt)"),
    # ---- configs ---------------------------------------------------------------------------------------
    "yaml-bad-indentation": config("data:\n  train_path: x.jsonl\n train:\n  max_steps: 1\n", 3, "invalid YAML"),
    "yaml-unclosed-bracket": config("data: {train_path: [x.jsonl\n", 2, "invalid YAML"),
    "yaml-unclosed-quote": config('data: {train_path: "x.jsonl}\n', 2, "invalid YAML"),
    "yaml-tab-indentation": config("data:\n\ttrain_path: x\n", 2, "invalid YAML (found character '\\t'"),
    "yaml-not-utf8": config(b"output_dir: runs/x\ndata:\n  train_path: caf\xe9.jsonl\n", 3, "not valid UTF-8"),
    "yaml-top-level-list": config("- data\n- train\n", None, "top level must be a mapping of sections"),
    "config-empty": config("", None, "data.train_path is required"),
    "config-section-not-a-mapping": config("data: 3\n", None, "data: Input should be a valid dictionary"),
    "config-unknown-key": config("data: {train_path: x.jsonl}\nlora: {rank: 8}\n", None,
                                 "unknown key 'lora.rank'; did you mean 'lora.r'?"),
    "config-wrong-type": config("data: {train_path: x.jsonl}\ntrain: {micro_batch_size: four}\n", None,
                                "train.micro_batch_size: Input should be a valid integer"),
    "config-out-of-range": config("data: {train_path: x.jsonl, val_fraction: 1.5}\n", None,
                                  "data.val_fraction: Input should be less than 1 (got 1.5)"),
    "config-not-a-choice": config("data: {train_path: x.jsonl}\ntrain: {precision: fp8}\n", None,
                                  "train.precision: Input should be 'auto', 'fp32' or 'bf16' (got 'fp8')"),
    "dpo-config-out-of-range": config("data: {train_path: x.jsonl}\ndpo: {beta: 0}\n", None,
                                      "dpo.beta: Input should be greater than 0 (got 0)", command="dpo"),
    "curate-config-out-of-range": ({"x.yaml": "curate: {near: {threshold: 2}}\n"},
                                   ["data", "curate", "{tmp}/good.jsonl", "-o", "{tmp}/out.jsonl", "--config", Y],
                                   Y + ": curate.near.threshold: Input should be less than 1 (got 2)"),
    # ---- --set values ----------------------------------------------------------------------------------
    "set-without-equals": override("--set 'train.learning_rate': use --set section.key=value",
                                   "train.learning_rate"),
    "set-without-key": override("--set '=1': use --set section.key=value", "=1"),
    "set-unknown-section": override("{tmp}/good.yaml: unknown key 'trian'; did you mean 'train'?", "trian.max_steps=1"),
    "set-bad-value": override("{tmp}/good.yaml: train.learning_rate: Input should be a valid number",
                              "train.learning_rate=fast"),
    "set-value-not-yaml": override("--set 'train.max_steps=[1': the value is not valid YAML", "train.max_steps=[1"),
    "set-key-under-a-value": override("{tmp}/good.yaml: --set 'output_dir.x=1': output_dir is not a section",
                                      "output_dir.x=1"),
    "curate-set-unknown-key": ({}, ["data", "curate", "{tmp}/good.jsonl", "-o", "{tmp}/out.jsonl",
                                    "--set", "near.treshold=0.5"],
                               "unknown key 'curate.near.treshold'; did you mean 'curate.near.threshold'?"),
}


@pytest.mark.parametrize("files, args, expected", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_naming_it_with_exit_2(run_cli, tokenizer, tmp_path, monkeypatch, files, args,
                                                      expected):
    code, out, err = run_cli(*materialize(tmp_path, monkeypatch, files, args))
    assert (code, out) == (2, ""), err
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected.replace("{tmp}", str(tmp_path)) in err
