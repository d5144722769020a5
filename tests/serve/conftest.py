"""Serve fixtures: a tiny LoRA run (base + adapter, with training data) and its models loaded once; the
helpers the tests share are in tests/serve/helpers.py."""

from __future__ import annotations

import json

import pytest
import torch

from tests.serve.helpers import INTENT_PROMPTS, KEY, OTHER_KEY, never_stopping_model


@pytest.fixture(scope="session")
def serve_run(tmp_path_factory, tokenizer):
    """RUN/{summary.json, adapter/ (random LoRA), data/train.jsonl} on a never-stopping tiny base."""
    import warnings

    from peft import LoraConfig, get_peft_model

    # peft calls a transformers API deprecated in v5 (as sftkit.models.apply_lora notes)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    root = tmp_path_factory.mktemp("serve")
    base_dir = root / "tiny-base"
    base = never_stopping_model()
    base.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    run = root / "run"
    torch.manual_seed(1)  # init_lora_weights=False: random A and B, so the adapter changes the replies
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False,
                                            task_type="CAUSAL_LM"))
    model.save_pretrained(run / "adapter")
    tokenizer.save_pretrained(run / "adapter")
    (run / "summary.json").write_text(json.dumps({"base_model": str(base_dir), "method": "lora",
                                                  "safety": {"over_refusal_rate": 0.05}}))
    (run / "data").mkdir()
    rows = [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": "x"}]}
            for p in INTENT_PROMPTS]
    (run / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    keys = root / "keys.txt"
    keys.write_text(f"# test keys\n{KEY}\n\n{OTHER_KEY}  # second client\n")
    return run


@pytest.fixture(scope="session")
def serve_catalog(serve_run):
    """The run's models loaded once, for servers that run one at a time."""
    import torch

    from sftkit.serve.catalog import load_catalog

    return load_catalog(str(serve_run), {}, torch.device("cpu"), torch.float32)
