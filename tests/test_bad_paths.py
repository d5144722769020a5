"""The bad-input corpus, wrong paths: every path the CLI takes, given as a file where a directory belongs or the
reverse, missing, unreadable, not writable, or under a file. Each ends in exit code 2 with one line naming the
path and the fix, no traceback, before any model loads. An OSError no check foresaw still names its path."""

from __future__ import annotations

import json

import pytest

from sftkit.errors import UserError
from tests.bad_input_cases import DIR, GOOD, READ_ONLY, UNREADABLE, materialize

TRAIN = ["train", "{tmp}/good.yaml"]
INSPECT = ["data", "inspect", "{tmp}/good.jsonl"]
CURATE = ["data", "curate", "{tmp}/good.jsonl"]


def case(args: list[str], expected: str, files: dict | None = None, env: dict | None = None):
    return (files or {}, args, expected, env or {})


def train(setting: str, expected: str, files: dict | None = None):
    return case([*TRAIN, "--set", setting], "{tmp}/good.yaml: " + expected, files)


CASES = {
    # ---- config files ----------------------------------------------------------------------------------
    "config-is-a-directory": case(["train", "{tmp}/adir"], "config file {tmp}/adir is a directory, not a file"),
    "config-missing": case(["estimate", "{tmp}/nope.yaml"], "config file {tmp}/nope.yaml does not exist"),
    "config-unreadable": case(["train", "{tmp}/x.yaml"], "config file {tmp}/x.yaml is not readable (permission "
                              "denied)", {"x.yaml": UNREADABLE}),
    "curate-config-is-a-directory": case([*CURATE, "-o", "{tmp}/o.jsonl", "--config", "{tmp}/adir"],
                                         "config file {tmp}/adir is a directory, not a file"),
    # ---- output directories ----------------------------------------------------------------------------
    "output-dir-is-a-file": train("output_dir={tmp}/afile", "output_dir {tmp}/afile is an existing file, not a "
                                  "directory: remove it or choose another output_dir"),
    "output-dir-under-a-file": train("output_dir={tmp}/afile/run", "output_dir {tmp}/afile/run cannot be created: "
                                     "{tmp}/afile is a file, not a directory"),
    "output-dir-in-read-only-dir": train("output_dir={tmp}/ro/run", "output_dir {tmp}/ro/run cannot be created: "
                                         "{tmp}/ro is not writable", {"ro": READ_ONLY}),
    "output-dir-read-only": train("output_dir={tmp}/ro", "output_dir {tmp}/ro is not writable", {"ro": READ_ONLY}),
    "dpo-output-dir-is-a-file": case(["dpo", "{tmp}/good.yaml", "--set", "output_dir={tmp}/afile"],
                                     "output_dir {tmp}/afile is an existing file"),
    "checkpoints-is-a-file": case(TRAIN, "checkpoint directory {tmp}/run/checkpoints is an existing file",
                                  {"run/checkpoints": "x"}),
    "eval-output-is-a-file": case(["eval", "--task", "{tmp}/good.jsonl", "--output", "{tmp}/afile"],
                                  "--output {tmp}/afile is an existing file, not a directory"),
    "compare-output-under-a-file": case(["compare", "{tmp}/adir", "--output", "{tmp}/afile/cmp"],
                                        "--output {tmp}/afile/cmp cannot be created: {tmp}/afile is a file"),
    "safety-output-is-a-file": case(["safety", "default", "--output", "{tmp}/afile"],
                                    "--output {tmp}/afile is an existing file"),
    "sftkit-home-is-a-file": case(["data", "fetch", "bigbench", "general_knowledge"],
                                  "SFTKIT_HOME {tmp}/afile is an existing file", env={"SFTKIT_HOME": "{tmp}/afile"}),
    # ---- output files ----------------------------------------------------------------------------------
    "rejects-is-a-directory": case([*INSPECT, "--rejects", "{tmp}/adir"], "--rejects {tmp}/adir is a directory, "
                                   "not a file: give a file path"),
    "rejects-under-a-file": case([*INSPECT, "--rejects", "{tmp}/afile/r.jsonl"],
                                 "--rejects {tmp}/afile/r.jsonl cannot be created: {tmp}/afile is a file"),
    "curate-output-is-a-directory": case([*CURATE, "-o", "{tmp}/adir"], "-o/--output {tmp}/adir is a directory"),
    "curate-output-in-read-only-dir": case([*CURATE, "-o", "{tmp}/ro/o.jsonl"], "-o/--output {tmp}/ro/o.jsonl "
                                           "cannot be created: {tmp}/ro is not writable", {"ro": READ_ONLY}),
    "curate-rejects-is-a-directory": case([*CURATE, "-o", "{tmp}/o.jsonl"], "the rejects file {tmp}/o.rejects.jsonl "
                                          "is a directory", {"o.rejects.jsonl": DIR}),
    "curate-report-under-a-file": case([*CURATE, "-o", "{tmp}/o.jsonl", "--report", "{tmp}/afile/r.json"],
                                       "--report {tmp}/afile/r.json cannot be created: {tmp}/afile is a file"),
    # ---- data --------------------------------------------------------------------------------------------
    "train-data-missing": train("data.train_path={tmp}/nope.jsonl", "data.train_path {tmp}/nope.jsonl does not "
                                "exist: check the path (or use bigbench:TASK, or hf:ORG/NAME)"),
    "train-data-unreadable": train("data.train_path={tmp}/x.jsonl", "data.train_path {tmp}/x.jsonl is not readable",
                                   {"x.jsonl": UNREADABLE}),
    "suite-task-missing": train("eval.suite=[{tmp}/nope.jsonl]", "eval.suite {tmp}/nope.jsonl does not exist"),
    "inspect-file-in-directory-unreadable": case(["data", "inspect", "{tmp}/d"], "data file {tmp}/d/b.jsonl is not "
                                                 "readable", {"d/a.jsonl": GOOD, "d/b.jsonl": UNREADABLE}),
    "inspect-directory-without-data": case(["data", "inspect", "{tmp}/adir"], "{tmp}/adir: no .jsonl, .json, .csv, "
                                           ".parquet files in this directory"),
    "eval-task-unreadable": case(["eval", "--task", "{tmp}/x.json"], "--task {tmp}/x.json is not readable",
                                 {"x.json": UNREADABLE}),
    "compare-test-is-a-directory": case(["compare", "{tmp}/adir", "--test", "{tmp}/adir"],
                                        "--test {tmp}/adir is a directory, not a file"),
    "decontaminate-set-missing": case([*CURATE, "-o", "{tmp}/o.jsonl", "--decontaminate", "{tmp}/nope.jsonl"],
                                      "decontamination set {tmp}/nope.jsonl does not exist"),
    "blocklist-is-a-directory": case(["generate", "default", "--prompt", "hi", "--guard-blocklist", "{tmp}/adir"],
                                     "{tmp}/adir: blocklist file not found"),
    # ---- models and run directories ----------------------------------------------------------------------
    "model-is-a-file": train("model.name={tmp}/afile", "model.name {tmp}/afile is a file, not a directory"),
    "model-dir-without-config": train("model.name={tmp}/adir", "model.name {tmp}/adir has no config.json"),
    "model-path-is-a-file": case(["model", "path", "{tmp}/afile"], "model {tmp}/afile is a file, not a directory"),
    "generate-model-is-a-file": case(["generate", "{tmp}/afile", "--prompt", "hi"], "model {tmp}/afile is a file"),
    "safety-against-missing": case(["safety", "default", "--against", "{tmp}/nope"], "--against {tmp}/nope does "
                                   "not exist"),
    "compare-run-is-a-file": case(["compare", "{tmp}/afile"], "run directory {tmp}/afile is a file, not a directory"),
}


@pytest.mark.parametrize("files, args, expected, env", CASES.values(), ids=CASES.keys())
def test_wrong_path_is_one_line_naming_it_with_exit_2(run_cli, tokenizer, tmp_path, monkeypatch, files, args,
                                                       expected, env):
    code, out, err = run_cli(*materialize(tmp_path, monkeypatch, files, args, env))
    assert (code, out) == (2, ""), err
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected.replace("{tmp}", str(tmp_path)) in err


def test_unforeseen_os_error_names_its_path_and_logs_the_traceback(run_cli, tiny_model_dir, tmp_path,
                                                                   monkeypatch):
    """eval checks --output, but not that eval.json inside it is a directory: the OSError from writing it
    becomes one line with the path, and its traceback goes to SFTKIT_HOME/last_error.log."""
    monkeypatch.setenv("SFTKIT_HOME", str(tmp_path / "home"))
    task = tmp_path / "t.jsonl"
    task.write_text(json.dumps({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant",
                                                                               "content": "A"}]}) + "\n")
    (tmp_path / "out" / "eval.json").mkdir(parents=True)
    code, out, err = run_cli("eval", "--model", str(tiny_model_dir), "--task", str(task), "--max-new-tokens", "1",
                             "--output", str(tmp_path / "out"))
    log = tmp_path / "home" / "last_error.log"
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[-1] == (f"error: {tmp_path / 'out' / 'eval.json'}: Is a directory: check that the path "
                                    "exists, is of the right kind, and that you may read or write it (traceback in "
                                    f"{log})")
    assert "IsADirectoryError" in log.read_text()


@pytest.mark.parametrize("error", [ZeroDivisionError("a bug"), OSError(28, "No space left on device")],
                         ids=["programming-bug", "os-error-without-a-path"])
def test_errors_that_are_not_path_mistakes_keep_their_traceback(run_cli, monkeypatch, error):
    from sftkit import config

    def broken(*_):
        raise error

    monkeypatch.setattr(config, "example_yaml", broken)
    with pytest.raises(type(error)):
        run_cli("config", "example")


def test_python_api_checks_output_dir_before_loading_anything(tmp_path):
    from sftkit.config import load_config
    from sftkit.recipes.sft import train

    (tmp_path / "afile").write_text("x")
    cfg = load_config(None, [f"data.train_path={tmp_path}/nope.jsonl", f"output_dir={tmp_path}/afile"])
    with pytest.raises(UserError, match=f"output_dir {tmp_path}/afile is an existing file"):
        train(cfg, quiet=True)
