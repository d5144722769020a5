"""The GGUF run in llama.cpp (the extra sftkit[gguf]): the same token ids for the chat-formatted test prompts,
teacher-forced agreement with the run's model, greedy replies against `sftkit generate`, stopping at the
end-of-turn token, and K-quants through llama.cpp's quantizer with the tensor types actually written.

Run in CI (where `make test` installs the extra); on a machine without it they skip, naming the extra."""

from __future__ import annotations

import pytest

from tests.export.runs import require_llama_cpp


@pytest.fixture(autouse=True)
def _llama_cpp():
    require_llama_cpp()


def test_f32_file_gives_the_run_models_tokens_logits_and_replies(gguf_exports):
    checks = gguf_exports["f32"]["checks"]
    assert checks["llama_cpp_tokens"] == {"passed": True, "num_prompts": 3, "mismatched": []}
    logits = checks["llama_cpp_logits"]
    # f32 in both: the logits differ by float rounding (~1e-6), far below the top-2 gaps of a random model
    assert logits["num_sequences"] == 3 and logits["top1_agreement"] == 1.0 and logits["mean_kl"] < 1e-6
    assert checks["llama_cpp_replies"]["passed"] is True and checks["llama_cpp_replies"]["identical_tokens"] == 1.0


def test_every_quant_reports_agreement_and_kl(gguf_exports):
    kl = {quant: report["checks"]["llama_cpp_logits"]["mean_kl"] for quant, report in gguf_exports.items()}
    agreement = {quant: report["checks"]["llama_cpp_logits"]["top1_agreement"] for quant, report in gguf_exports.items()}
    assert set(kl) == {"f32", "f16", "bf16", "q8_0"}
    assert kl["f32"] <= kl["f16"] and kl["f32"] <= kl["q8_0"]  # rounding only adds error
    assert all(0.0 <= a <= 1.0 for a in agreement.values())


def test_end_of_turn_token_is_end_of_generation_in_llama_cpp(gguf_exports):
    stops = gguf_exports["f32"]["checks"]["llama_cpp_stops"]
    assert stops["stop_ids_known_to_llama_cpp"] == {"2": True}  # <|im_end|>


def test_k_quant_through_llama_cpps_quantizer_reports_its_fallback_types(export_run, tmp_path):
    from sftkit.export.exporter import run_export

    report = run_export(str(export_run), "gguf", "q4_k_m", output=tmp_path / "out", max_new_tokens=8)
    types = report["tensor_types"]
    # 64-wide rows are not a multiple of the K-quant block (256): llama.cpp writes other types instead
    assert "Q4_K" not in types and sum(types.values()) == 20 and types.get("F32") == 5
    assert report["checks"]["gguf_weights"]["passed"] is True  # no tensor over a bound (none claimed for these)
    assert report["checks"]["llama_cpp_tokens"]["passed"] is True
    assert report["files"].keys() == {"model-q4_k_m.gguf"}


@pytest.mark.integration
@pytest.mark.slow
def test_default_model_f16_replies_match_sftkit_generate_and_stop_by_themselves(tmp_path):
    from sftkit.export.exporter import run_export

    report = run_export("default", "gguf", "f16", output=tmp_path / "out", max_new_tokens=48)
    checks = report["checks"]
    assert report["passed"] is True, checks
    assert checks["llama_cpp_replies"]["identical_tokens"] == 1.0
    stops = checks["llama_cpp_stops"]
    assert stops["missed_stops"] == [] and stops["stopped_by_itself"] == stops["sftkit_generate_stopped"] > 0
    assert checks["llama_cpp_stops"]["end_tokens"] == [2]
