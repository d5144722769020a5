"""GGUF exports through llama.cpp's converter, checked without llama.cpp: metadata against the HF model and the
file read back by transformers' GGUF reader against the merged weights, at each type's derived bound."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sftkit.export import verify
from sftkit.export.converter import converter_dir, supported_architectures

# the tiny model: token_embd + 2 layers x 7 matrices are 2-D (15), 2 layers x 2 norms + the final norm are 1-D (5)
EXPECTED_TYPES = {"f32": {"F32": 20}, "f16": {"F16": 15, "F32": 5}, "bf16": {"BF16": 15, "F32": 5},
                  "q8_0": {"Q8_0": 15, "F32": 5}}


@pytest.mark.parametrize("quant", list(EXPECTED_TYPES))
def test_gguf_export_passes_its_pure_python_checks(gguf_exports, quant):
    report = gguf_exports[quant]
    assert report["tensor_types"] == EXPECTED_TYPES[quant]
    checks = report["checks"]
    assert checks["gguf_metadata"]["passed"] and checks["gguf_metadata"]["mismatched"] == {}
    assert checks["gguf_weights"]["passed"] and checks["gguf_weights"]["num_tensors"] == 20
    assert checks["merged_logits"]["max_abs_diff_vs_expected"] == 0.0
    assert report["files"].keys() == {f"model-{quant}.gguf"}  # the staged fp32 HF copy is gone


def test_f32_readback_is_exact_and_q8_0_error_stays_under_its_bound(gguf_exports):
    assert gguf_exports["f32"]["checks"]["gguf_weights"]["by_type"]["F32"]["max_abs_error"] == 0.0
    q8 = gguf_exports["q8_0"]["checks"]["gguf_weights"]["by_type"]["Q8_0"]
    assert q8["failed"] == 0 and 0.5 < q8["max_error_over_bound"] <= 1.0  # d/2 is reached in practice


def _q8_0_roundtrip(weight: torch.Tensor) -> torch.Tensor:
    from gguf import GGMLQuantizationType, dequantize, quantize

    packed = quantize(weight.numpy(), GGMLQuantizationType.Q8_0)
    return torch.from_numpy(np.asarray(dequantize(packed, GGMLQuantizationType.Q8_0), dtype=np.float32))


def test_q8_0_bound_holds_for_gguf_quantization_and_catches_a_larger_error():
    torch.manual_seed(0)
    weight = torch.randn(64, 256) * torch.logspace(-6, 1, 64).unsqueeze(1)  # fp16-subnormal scales included
    read = _q8_0_roundtrip(weight)
    assert verify.compare_tensor("Q8_0", read, weight)["passed"] is True
    bound = verify.q8_0_bound(weight)
    nudged = read.clone()
    nudged[3, 5] = weight[3, 5] + 1.01 * float(bound[3, 5])
    assert verify.compare_tensor("Q8_0", nudged, weight)["passed"] is False


def test_f16_and_bf16_must_equal_the_rounded_cast():
    weight = torch.randn(8, 32)
    for name, dtype in (("F16", torch.float16), ("BF16", torch.bfloat16)):
        read = weight.to(dtype).float()
        assert verify.compare_tensor(name, read, weight)["passed"] is True
        read[0, 0] = torch.nextafter(read[0, 0], torch.tensor(float("inf")))
        assert verify.compare_tensor(name, read, weight)["passed"] is False


def test_types_without_a_bound_are_reported_not_passed():
    weight = torch.randn(4, 32)
    result = verify.compare_tensor("Q4_K", weight * 1.01, weight)
    assert result["passed"] is None and result["relative_error"] == pytest.approx(0.01, rel=1e-4)


def test_only_the_converter_is_extracted_from_the_sdist(gguf_exports):
    root = converter_dir(fetch=False)
    assert sorted(p.name for p in root.iterdir()) == ["LICENSE", "conversion", "convert_hf_to_gguf.py", "gguf-py"]
    assert {"LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"} <= supported_architectures()
