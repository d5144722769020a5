"""QLoRA (`train.method: qlora`): LoRA on an NF4 base through bitsandbytes, exported by dequantizing first.

bitsandbytes' CPU backend quantizes to NF4 and runs forward and backward through the frozen 4-bit weights, so
the training path runs here; without the package only the configuration path can (last test).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from sftkit.errors import UserError
from sftkit.recipes.sft import train
from tests.helpers import sft_config


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs the qlora extra (bitsandbytes)")
def test_qlora_trains_the_adapter_on_a_4bit_base_and_merges_into_the_dequantized_base(tmp_path, tiny_model_dir,
                                                                                      monkeypatch):
    import bitsandbytes as bnb
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    import sftkit.recipes.sft as sft
    from sftkit.models import load_model

    seen = {}
    real_train_step = sft.train_step

    def watching(rt, state, batches):
        layer = rt.model.base_model.model.model.layers[0].mlp.up_proj
        seen.setdefault("base", type(layer.base_layer))
        seen.setdefault("packed_bytes", layer.base_layer.weight.dtype)
        seen.setdefault("frozen", all(not p.requires_grad for n, p in rt.model.named_parameters() if "lora_" not in n))
        return real_train_step(rt, state, batches)

    monkeypatch.setattr(sft, "train_step", watching)
    cfg = sft_config(tmp_path, tiny_model_dir, method="qlora", max_steps=3, learning_rate=5e-2)
    summary = train(cfg, quiet=True)
    assert seen == {"base": bnb.nn.Linear4bit, "packed_bytes": torch.uint8, "frozen": True}
    run = Path(cfg.output_dir)
    assert set(summary["outputs"]) == {"adapter", "merged"}  # qlora always merges: see export_model
    assert summary["best_val_loss"] < summary["initial_val_loss"]

    ids = torch.tensor([[1, 200, 300, 400, 2, 17]])
    merged = AutoModelForCausalLM.from_pretrained(run / "merged").eval()
    assert getattr(merged.config, "quantization_config", None) is None  # a plain model, not a 4-bit one
    assert merged.model.layers[0].mlp.up_proj.weight.dtype == torch.float32
    fresh = load_model(str(tiny_model_dir), quantize_4bit=True)
    on_dequantized = PeftModel.from_pretrained(fresh.dequantize(), run / "adapter").eval()
    on_original = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run / "adapter")
    with torch.no_grad():
        got, want, original = (m(ids).logits for m in (merged, on_dequantized, on_original.eval()))
    # merging adds the adapter's product into each weight: sums of ~64 fp32 terms, off by a few ulps of the logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # ... and the merge is onto the NF4-rounded weights (NF4 moves each weight by up to ~1/16 of its block's
    # largest), not the original ones, whose logits differ by far more than that tolerance
    assert (original - want).abs().max() > 100 * 1e-5


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs the qlora extra (bitsandbytes)")
def test_gradients_through_the_4bit_base_equal_those_through_its_dequantized_weights(tiny_model_dir):
    """Backward through frozen NF4 weights reaches every adapter, with the gradients of the same adapters on the
    dequantized weights. bitsandbytes' CPU kernels multiply in bf16 (8 significant bits: 2^-8 = 0.4% per
    product, here ~0.3% measured), hence 1%."""
    from sftkit.config import LoraSection
    from sftkit.models import apply_lora, load_model
    from sftkit.training.loop import prepare_model

    grads = []
    for quantized in (True, False):
        model = load_model(str(tiny_model_dir), quantize_4bit=True)
        model = prepare_model(model, _Train()) if quantized else model.dequantize()
        torch.manual_seed(1)
        model = apply_lora(model, LoraSection(dropout=0.0))
        with torch.no_grad():  # B is zero at init: make both factors' gradients non-zero
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.1)
        ids = torch.tensor([[(31 * t) % 4000 + 50 for t in range(24)]])
        model(input_ids=ids, labels=ids).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    four_bit, plain = grads
    assert set(four_bit) == set(plain) and len(plain) == 2 * 7 * 2  # A and B of 7 projections in 2 layers
    for name, g in plain.items():
        assert (four_bit[name] - g).norm() <= 1e-2 * g.norm(), name


class _Train:
    """The train options prepare_model reads, for a padded, unpacked model without checkpointing."""

    packing = False
    gradient_checkpointing = False


def test_qlora_without_bitsandbytes_is_one_line_with_the_fix(tmp_path, tiny_model_dir, monkeypatch, run_cli):
    import yaml

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    cfg = sft_config(tmp_path, tiny_model_dir, method="qlora")
    with pytest.raises(UserError, match=r"train.method: qlora needs bitsandbytes: pip install 'sftkit\[qlora\]'"):
        train(cfg, quiet=True)
    config_file = tmp_path / "qlora.yaml"
    config_file.write_text(yaml.safe_dump(cfg.model_dump(mode="json") | {"output_dir": str(tmp_path / "cli")}))
    code, _, err = run_cli("train", str(config_file))
    assert code == 2 and "needs bitsandbytes" in err and "Traceback" not in err
