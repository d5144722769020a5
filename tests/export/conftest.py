"""Export fixtures: a run directory over a tiny random Llama (real SmolLM2 tokenizer and chat template) with a
non-zero LoRA adapter, and the rule for the tests that need llama.cpp."""

from __future__ import annotations

import importlib.util
import os

import pytest

from tests.export.runs import make_run


def require_llama_cpp() -> None:
    """Skip without llama-cpp-python on a user's machine; under CI (CI=true) its absence is a failure, since
    `make test` installs the extra sftkit[gguf] and these tests must run there."""
    if importlib.util.find_spec("llama_cpp") is not None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true but llama-cpp-python is not installed: `make test` installs the extra sftkit[gguf]")
    pytest.skip("needs the extra sftkit[gguf] (llama-cpp-python): pip install -e '.[gguf]'")


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
