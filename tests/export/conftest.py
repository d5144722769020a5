"""Export fixtures: a run directory over a tiny random Llama (real SmolLM2 tokenizer and chat template) with a
non-zero LoRA adapter, and GGUF exports of it."""

from __future__ import annotations

import pytest

from tests.export.runs import make_run


@pytest.fixture(scope="session")
def export_run(tmp_path_factory, tiny_model_dir, tokenizer):
    return make_run(tmp_path_factory.mktemp("export-run"), tiny_model_dir, tokenizer)


@pytest.fixture(scope="session")
def gguf_exports(tmp_path_factory, export_run):
    """{quant: report} of GGUF exports of `export_run`, one per converter type (written once per session)."""
    from sftkit.export.exporter import run_export

    root = tmp_path_factory.mktemp("gguf-exports")
    return {quant: run_export(str(export_run), "gguf", quant, output=root / quant, max_new_tokens=8)
            for quant in ("f32", "f16", "bf16", "q8_0")}
