"""Model cards: README.md in adapter/ (and merged/, exports) with base_model, the measured model-index, the
headline table with n and intervals, training facts, safety figures and the config."""

from __future__ import annotations

import json

import yaml
from huggingface_hub import ModelCard

from sftkit.report.figures import task_label
from sftkit.report.model_card import write_model_card, write_model_cards


def test_training_writes_the_adapter_card_with_the_measured_results(report_run, tiny_model_dir):
    card = ModelCard.load(report_run / "adapter" / "README.md")
    comparison = json.loads((report_run / "compare" / "comparison.json").read_text())
    safety = json.loads((report_run / "safety" / "safety.json").read_text())
    # a local base model with no hub id is not claimed as one
    assert card.data.base_model is None and card.data.library_name == "peft"
    results = {(r.task_name, r.metric_type): r.metric_value for r in card.data.eval_results}
    tuned = comparison["accuracy"]["tuned"]
    assert results[("held-out test split", comparison["test"]["metric"])] == round(tuned["value"], 4)
    for name, row in comparison["forgetting"]["tasks"].items():
        assert results[(task_label(name), row["metric"])] == round(row["tuned"]["value"], 4)
    for name, entry in safety["metrics"].items():
        assert results[("safety", name)] == round(entry["model"]["value"], 4)
    gain = comparison["gain_over_prompting"]
    text = card.text
    assert f"| gain over the best prompting baseline (paired) | {gain['abs']:+.3f} [{gain['ci_low']:+.3f}, " \
           f"{gain['ci_high']:+.3f}] n={gain['n']} |" in text
    assert f"{tuned['value']:.3f} [{tuned['ci_low']:.3f}, {tuned['ci_high']:.3f}] n={tuned['n']}" in text
    assert "## Safety" in text and "refusal rate on harmful requests went from" in text
    config_block = text.split("```yaml\n", 1)[1].split("\n```", 1)[0]
    assert yaml.safe_load(config_block) == yaml.safe_load((report_run / "config.yaml").read_text())
    assert "<details>" in text and "## Intended use" in text and "## How it was trained" in text


def test_default_base_model_gets_its_hub_id_and_exports_get_cards(full_run):
    summary = json.loads((full_run / "summary.json").read_text())
    summary["base_model"] = "default"
    (full_run / "summary.json").write_text(json.dumps(summary))
    (full_run / "merged").mkdir()
    paths = write_model_cards(full_run)
    assert paths == [full_run / "adapter" / "README.md", full_run / "merged" / "README.md",
                     full_run / "export" / "gguf" / "README.md"]
    merged = ModelCard.load(paths[1])
    assert merged.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert merged.data.license == "apache-2.0" and merged.data.library_name == "transformers"
    gguf = ModelCard.load(paths[2])
    assert "export-gguf" in gguf.data.tags and "An export (gguf) of" in gguf.text
    # what the export step calls: one directory, the run found above it
    again = write_model_card(full_run / "export" / "gguf", export={"format": "gguf"})
    assert again.read_text() == paths[2].read_text()
    # the export step writes its card into a staging directory beside the final one, before the rename
    staging = full_run / "export" / ".ollama.partial-123"
    staging.mkdir()
    card = ModelCard.load(write_model_card(staging, export={"format": "ollama", "quant": "q8_0"}))
    assert "export-ollama" in card.data.tags and "An export (ollama) of" in card.text
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
