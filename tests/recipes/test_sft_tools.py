"""`sftkit train` on tool-calling data: the configured template renders the calls, is saved with the run, and the
run's data files keep each row's tools; the model's own template is refused before training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sftkit.errors import UserError
from sftkit.recipes.sft import train
from sftkit.recipes.sft_config import SFTConfig
from tests.helpers import sft_config

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "examples" / "chatml_tools.jinja"


def tool_config(tmp_path, model_dir, chat_template: str | None) -> tuple[SFTConfig, dict]:
    """One step over all 9 training conversations (of the first 12 of examples/data/tools.json, whose tools are
    given once for the file) of a tiny model."""
    example = json.loads((ROOT / "examples" / "data" / "tools.json").read_text())
    subset = {"tools": example["tools"], "data": example["data"][:12]}
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(subset))
    raw = sft_config(tmp_path, model_dir, max_steps=1, micro_batch_size=9,
                     data={"train_path": str(path), "max_length": 416}).model_dump(mode="json")
    raw["model"]["chat_template"] = chat_template
    return SFTConfig.model_validate(raw), subset


def test_tool_run_saves_its_template_and_each_rows_tools(tmp_path, tiny_model_dir, tokenizer):
    from sftkit.data.chat_templates import use_chat_template
    from sftkit.data.dataset import load_conversations, tokenize_examples

    config, subset = tool_config(tmp_path, tiny_model_dir, str(TEMPLATE))
    summary = train(config, quiet=True)
    run = Path(config.output_dir)
    assert (run / "tokenizer" / "chat_template.jinja").read_text() == TEMPLATE.read_text()
    rows = [json.loads(line) for line in (run / "data" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 9 and all(r["tools"] == subset["tools"] for r in rows)
    original = tokenizer.chat_template
    use_chat_template(tokenizer, str(TEMPLATE))
    try:  # the rows the run wrote tokenise, under its template, to the tokens it trained
        examples, _ = load_conversations(str(run / "data" / "train.jsonl"))
        tokenized, _ = tokenize_examples(tokenizer, examples, 416)
    finally:
        tokenizer.chat_template = original
    assert summary["num_train_examples"] == len(tokenized) == 9
    assert summary["trained_tokens"] == sum(t.num_trained_tokens for t in tokenized)


def test_tool_data_under_the_models_own_template_is_refused_naming_it(tmp_path, tiny_model_dir):
    config, _ = tool_config(tmp_path, tiny_model_dir, None)
    with pytest.raises(UserError) as info:
        train(config, quiet=True)
    assert info.value.format().startswith(f"{tmp_path / 'tools.json'}:")
    assert f"the chat template of {tiny_model_dir} does not render the `tools` list" in str(info.value)
    assert "set model.chat_template (or --chat-template) to a template FILE" in str(info.value)
