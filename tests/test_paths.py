"""sftkit.paths: which specs name local paths, and the checks' verdicts on relative paths and OSErrors.
(Every kind of wrong path through the CLI is in tests/test_bad_paths.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from sftkit.paths import local_data_path, local_model_path, os_error_line, output_problem


@pytest.mark.parametrize("spec, local", [
    ("bigbench:general_knowledge", None),
    ("hf:org/name", None),
    ("org/name", None),  # a hub dataset id: no such local path, no suffix
    ("org/name.jsonl", "org/name.jsonl"),  # a suffix: meant as a file, so "not found" rather than the hub
    ("./org/name", "org/name"),
    ("data.jsonl", "data.jsonl"),
    ("sub", "sub"),  # exists here, so local even though it could be a hub id
])
def test_local_data_path(tmp_path, monkeypatch, spec, local):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    assert local_data_path(spec) == (Path(local) if local else None)


@pytest.mark.parametrize("name, local", [
    ("default", None), (None, None), ("HuggingFaceTB/SmolLM2-135M-Instruct", None), ("./m", "m"), ("/nope", "/nope"),
    ("sub", "sub"),
])
def test_local_model_path(tmp_path, monkeypatch, name, local):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    assert local_model_path(name) == (Path(local) if local else None)


def test_relative_output_paths_are_judged_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("x")
    assert output_problem("runs/a/b", "output_dir") is None  # missing parents are created
    assert output_problem("f/run", "output_dir") == (f"output_dir f/run cannot be created: {tmp_path / 'f'} is a "
                                                     "file, not a directory: choose another output_dir")
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    assert output_problem("link", "output_dir") == (f"output_dir link is a broken symbolic link (to {tmp_path}/gone):"
                                                    " remove it or choose another path")


def test_os_error_line_names_both_paths_of_a_rename_and_none_without_a_path():
    rename = OSError(21, "Is a directory", "/r/a.tmp", None, "/r/a")
    assert os_error_line(rename) == ("/r/a.tmp -> /r/a: Is a directory: check that the path exists, is of the right "
                                     "kind, and that you may read or write it")
    assert os_error_line(OSError(28, "No space left on device")) is None
