"""`sftkit.export(...)`: the Python API returns an ExportResult whose fields are export_report.json's."""

from __future__ import annotations

import json
from pathlib import Path

import sftkit


def test_export_from_python_returns_the_report(export_run, tmp_path):
    assert "export" in sftkit.__all__ and "ExportResult" in sftkit.__all__
    result = sftkit.export(export_run, "hf", dtype="fp16", output=tmp_path / "out")
    assert isinstance(result, sftkit.ExportResult)
    assert result.output_dir == tmp_path / "out" and result.format == "hf" and result.dtype == "fp16"
    assert result.passed is True and result.verified is True
    on_disk = json.loads(Path(tmp_path / "out" / "export_report.json").read_text())
    assert result.to_dict() == {k: v for k, v in on_disk.items() if k != "output_dir"}
    assert result.files["model.safetensors"] == (tmp_path / "out" / "model.safetensors").stat().st_size


def test_the_package_name_stays_callable_once_its_modules_are_imported(export_run, tmp_path):
    import sftkit.export.exporter  # sets the attribute sftkit.export to the package

    result = sftkit.export(export_run, "hf", dtype="fp32", output=tmp_path / "out", verify=False)
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert result.checks == {} and result.passed is None and result.verified is False  # --no-verify runs no check


def test_ollama_export_writes_a_checked_modelfile(export_run, tmp_path, tokenizer):
    from sftkit.export.ollama import default_system

    system = default_system(tokenizer)
    assert system.startswith("You are a helpful AI assistant named SmolLM")
    result = sftkit.export(export_run, "ollama", "f16", output=tmp_path / "out")
    template = result.checks["ollama_template"]
    assert template["passed"] is True and template["family"] == "chatml"
    # the pure-Python gates (a random tiny model need not stop by itself, so the llama.cpp stop gate is not one)
    assert all(result.checks[k]["passed"] is True for k in ("gguf_metadata", "gguf_weights", "merged_logits"))
    modelfile = (tmp_path / "out" / "Modelfile").read_text()
    assert modelfile.startswith('FROM ./model.gguf\nTEMPLATE """')
    # the run's data.max_length is 96; <|im_end|> is the SmolLM2 tokenizer's end of turn and EOS
    assert modelfile.endswith(f'"""\nSYSTEM """{system}"""\nPARAMETER stop "<|im_end|>"\n'
                              'PARAMETER num_ctx 96\n')
    assert result.commands == {"ollama": f"ollama create {export_run.name.lower()} -f {tmp_path / 'out' / 'Modelfile'}"}
    assert result.files.keys() == {"model.gguf", "Modelfile"}
