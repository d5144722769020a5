"""The Hugging Face export: merged weights in the chosen dtype, equal logits read back, one chat template, EOS =
end of turn, generation_config with every stop id and neutral sampling, the vLLM adapter checks and commands."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from sftkit.export import hf
from sftkit.export.exporter import run_export
from sftkit.export.report import vllm_commands


@pytest.fixture(scope="module")
def hf_export(tmp_path_factory, export_run):
    out = tmp_path_factory.mktemp("hf") / "out"
    return out, run_export(str(export_run), "hf", dtype="bf16", output=out)


def test_hf_export_files_and_checks(hf_export, export_run):
    out, report = hf_export
    assert report["passed"] is True
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja", "generation_config.json",
            "adapter/adapter_model.safetensors", "adapter/adapter_config.json", "export_report.json"} <= {
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert report["checks"]["merged_logits"]["max_abs_diff_vs_expected"] == 0.0
    assert report["checks"]["merged_logits"]["num_prompts"] == 3  # the run's data/test.jsonl
    assert report["checks"]["one_chat_template"]["templates"] == ["chat_template.jinja"]
    assert not list(out.parent.glob(".out.partial-*"))


def test_hf_export_has_a_model_card_with_its_source_checks_and_serve_commands(hf_export, export_run):
    out, report = hf_export
    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlibrary_name: transformers\ntags: [sftkit, export-hf]\n---\n")
    assert "# out (hf, bf16)" in card and f"from `{export_run}`" in card and "LoRA adapter merged in fp32" in card
    assert "Checks against the model it came from: all passed." in card
    assert report["commands"]["merged"] in card and report["commands"]["adapter"] in card


def test_hf_weights_are_the_fp32_merge_rounded_to_bf16(hf_export, export_run):
    from sftkit.export.source import load_merged, resolve_source

    out, _ = hf_export
    saved = load_file(out / "model.safetensors")
    merged = load_merged(resolve_source(str(export_run))).state_dict()
    assert {t.dtype for t in saved.values()} == {torch.bfloat16}
    for name, tensor in saved.items():
        assert torch.equal(tensor, merged[name].to(torch.bfloat16)), name
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"


def test_generation_config_and_tokenizer_stop_on_the_end_of_turn_token(hf_export):
    out, report = hf_export
    config = json.loads((out / "generation_config.json").read_text())
    assert config["eos_token_id"] == report["stop_ids"] == [2]  # <|im_end|> in SmolLM2's vocabulary
    assert (config["temperature"], config["top_p"], config["top_k"], config["repetition_penalty"]) == (1.0, 1.0, 0, 1.0)
    assert json.loads((out / "tokenizer_config.json").read_text())["eos_token"] == "<|im_end|>"


def test_vllm_command_lines(hf_export, export_run, tiny_model_dir):
    out, report = hf_export
    assert report["commands"] == {
        "merged": f"vllm serve {out} --served-model-name {export_run.name} --dtype bfloat16 --generation-config auto",
        "adapter": f"vllm serve {tiny_model_dir} --enable-lora --lora-modules {export_run.name}={out / 'adapter'} "
                   "--generation-config auto"}
    assert vllm_commands(out, "m", "fp16", "base", out / "adapter", 32)["adapter"].endswith("--max-lora-rank 32")


def test_exported_adapter_loads_in_peft_as_the_run_model(hf_export, export_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftkit.export.source import load_reference, resolve_source

    out, _ = hf_export
    run_model = load_reference(resolve_source(str(export_run)))
    ids = AutoTokenizer.from_pretrained(out).apply_chat_template(
        [{"role": "user", "content": "What is 2 plus 3?"}], add_generation_prompt=True, return_tensors="pt",
        return_dict=True)["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    served_adapter = PeftModel.from_pretrained(base, out / "adapter").eval()
    with torch.no_grad():  # the adapter files are the run's own: same modules, same weights, same arithmetic
        assert torch.equal(served_adapter(ids).logits, run_model(ids).logits)


def test_keep_one_chat_template_moves_a_tokenizer_config_copy_out(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "T", "eos_token": "e"}))
    hf.keep_one_chat_template(tmp_path)
    assert hf.chat_templates(tmp_path) == ["chat_template.jinja"]
    assert (tmp_path / "chat_template.jinja").read_text() == "T"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "T2"}))
    hf.keep_one_chat_template(tmp_path)  # the file already there stays the one template
    assert hf.chat_templates(tmp_path) == ["chat_template.jinja"] and (tmp_path / "chat_template.jinja").read_text() == "T"


@pytest.mark.parametrize("config, problem", [
    ({"use_dora": True}, "DoRA"),
    ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
    ({"bias": "lora_only"}, "biases"),
    ({"r": 1024}, "above vLLM's largest"),
])
def test_adapters_vllm_cannot_serve_are_named(tmp_path, config, problem):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 8, "bias": "none", **config}))
    problems, _ = hf.adapter_problems(tmp_path, None)
    assert len(problems) == 1 and problem in problems[0]


def test_rank_above_16_raises_max_lora_rank(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 24, "bias": "none"}))
    problems, notes = hf.adapter_problems(tmp_path, None)
    assert problems == [] and "above vLLM's default --max-lora-rank 16" in notes[0]
    assert hf.lora_rank_option(tmp_path) == 32
    assert "above --max-lora-rank 16" in hf.adapter_problems(tmp_path, 16)[0][0]


def test_dora_run_exports_merged_only_with_the_reason(tmp_path, tiny_model_dir, tokenizer):
    from tests.export.runs import make_run

    (tmp_path / "dora").mkdir()
    run = make_run(tmp_path / "dora", tiny_model_dir, tokenizer, use_dora=True)
    report = run_export(str(run), "hf", dtype="fp32", output=tmp_path / "out")
    assert report["passed"] is True and "adapter" not in report["commands"]
    assert not (tmp_path / "out" / "adapter").exists()
    assert "DoRA" in report["notes"][0] and "Serve the merged model" in report["notes"][0]
