"""A fake `sftkit train` run directory for export tests, and the rule for the tests that need llama.cpp (plain
helpers; fixtures are in conftest.py)."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest
import yaml


def conversation(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"What is {i} plus {i + 1}?"},
                         {"role": "assistant", "content": str(2 * i + 1)}]}


def make_run(path, base_dir, tokenizer, **lora):
    """RUN/{summary.json, config.yaml, adapter/, data/test.jsonl} on `base_dir`; `lora` overrides LoraSection."""
    from sftkit.config import LoraSection
    from tests.helpers import tuned_lora_model

    model = tuned_lora_model(base_dir, LoraSection(**{"r": 4, "alpha": 8, "dropout": 0.0, **lora}))
    model.save_pretrained(path / "adapter")
    tokenizer.save_pretrained(path / "adapter")
    (path / "summary.json").write_text(json.dumps({"base_model": str(base_dir), "method": "lora"}))
    (path / "config.yaml").write_text(yaml.safe_dump({"model": {"name": str(base_dir)}, "data": {"max_length": 96}}))
    (path / "data").mkdir()
    (path / "data" / "test.jsonl").write_text("".join(json.dumps(conversation(i)) + "\n" for i in range(3)))
    return path


def require_llama_cpp() -> None:
    """Skip without llama-cpp-python on a user's machine; under CI (CI=true) its absence is a failure, since
    `make test` installs the extra sftkit[gguf] and these tests must run there."""
    if importlib.util.find_spec("llama_cpp") is not None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true but llama-cpp-python is not installed: `make test` installs the extra sftkit[gguf]")
    pytest.skip("needs the extra sftkit[gguf] (llama-cpp-python): CMAKE_ARGS='-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF' "
                "pip install -e '.[gguf]'")
