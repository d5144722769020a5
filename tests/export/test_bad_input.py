"""Bad input to `sftkit export`: one clear line, exit code 2, and nothing half-written left behind."""

from __future__ import annotations

import json
import shutil
import sys

import pytest


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name)


def _one_line(code, err):
    """The error line (progress notes may come before it)."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in err and err.count("error: ") == 1, err
    return lines[-1]


def test_run_without_weights(run_cli, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text(json.dumps({"base_model": "default"}))
    code, _, err = run_cli("export", str(tmp_path / "run"), "--format", "gguf")
    assert "has no weights (neither merged/ nor adapter/)" in _one_line(code, err)


def test_existing_output_needs_force(run_cli, export_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = run_cli("export", str(export_run), "--format", "hf", "--output", str(out), "--no-verify")
    assert "already exists: pass --force" in _one_line(code, err)
    assert (out / "keep.txt").read_text() == "mine"


def test_force_replaces_the_old_export_and_leaves_no_temporary_names(run_cli, export_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    code, stdout, err = run_cli("export", str(export_run), "--format", "hf", "--dtype", "fp32", "--output",
                                str(out), "--force", "--no-verify")
    assert code == 0, err
    assert not (out / "stale.txt").exists() and (out / "export_report.json").is_file()
    assert _leftovers(tmp_path) == []
    assert f"vllm serve {out}" in stdout


def test_unknown_architecture_for_gguf(run_cli, tiny_model_dir, tmp_path):
    model = tmp_path / "odd-model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "architectures": ["SomethingNewForCausalLM"]}))
    code, _, err = run_cli("export", str(model), "--format", "gguf", "--output", str(tmp_path / "out"))
    assert "does not know the architecture SomethingNewForCausalLM" in _one_line(code, err)
    assert "--format hf" in err and not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_k_quant_without_the_extra_names_it_and_the_install_command(run_cli, export_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` now raises ImportError
    code, _, err = run_cli("export", str(export_run), "--quant", "q4_k_m", "--output", str(tmp_path / "out"))
    assert "optional extra sftkit[gguf]" in _one_line(code, err) and "pip install 'sftkit[gguf]'" in err
    assert not (tmp_path / "out").exists()


def test_adapter_on_a_4bit_base_is_refused_with_the_reason(run_cli, export_run, tiny_model_dir, tmp_path):
    base = tmp_path / "base-4bit"
    shutil.copytree(tiny_model_dir, base)
    config = json.loads((base / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (base / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli("export", str(export_run), "--format", "hf", "--base", str(base), "--output",
                           str(tmp_path / "out"))
    assert "stored bitsandbytes (4-bit): merging the adapter into quantized weights" in _one_line(code, err)
    assert "--base" in err and not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_no_space_on_disk(run_cli, export_run, tmp_path, monkeypatch):
    import collections

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    code, _, err = run_cli("export", str(export_run), "--format", "hf", "--output", str(tmp_path / "out"))
    assert "not enough free space for this export" in _one_line(code, err)
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("args, message", [
    (["--format", "onnx"], "--format 'onnx' is not one of hf, gguf, ollama"),
    (["--format", "gguf", "--quant", "q3_k"], "--quant 'q3_k' is not one of"),
    (["--format", "hf", "--quant", "q8_0"], "--quant applies to --format gguf and ollama"),
    (["--format", "hf", "--dtype", "int8"], "--dtype 'int8' is not one of bf16, fp16, fp32"),
    (["--format", "gguf", "--template", "t.txt"], "--template applies to --format ollama only"),
])
def test_option_mistakes(run_cli, export_run, args, message):
    code, _, err = run_cli("export", str(export_run), *args)
    assert message in _one_line(code, err)
