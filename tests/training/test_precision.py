"""Precision: what `train.precision` resolves to on each kind of CPU, bf16 autocast's loss against fp32, and the
start-up table and summary naming the choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import sftkit.training.precision as precision
from sftkit.data.batching import collate
from sftkit.recipes.sft import train
from sftkit.training.attention import register
from sftkit.training.loss import CausalLMLoss
from tests.helpers import sft_config
from tests.helpers import packed_examples

CPU = torch.device("cpu")


@pytest.mark.parametrize("feature, setting, expected", [
    ("AMX", "auto", "bf16 autocast, fp32 weights (auto: this CPU has AMX)"),
    ("AVX512-BF16", "auto", "bf16 autocast, fp32 weights (auto: this CPU has AVX512-BF16)"),
    (None, "auto", "fp32 (auto: this CPU has no native bf16 (AMX or AVX512-BF16))"),
    (None, "bf16", "bf16 autocast, fp32 weights (train.precision: bf16, emulated: this CPU has no native bf16, "
                   "expect it to be slow)"),
    ("AMX", "fp32", "fp32 (train.precision: fp32)"),
])
def test_cpu_choice_follows_the_feature(monkeypatch, feature, setting, expected):
    monkeypatch.setattr(precision, "cpu_bf16_feature", lambda: feature)
    chosen = precision.choose_precision(setting, CPU)
    assert chosen.describe() == expected
    assert chosen.weights_dtype == torch.float32  # master weights and optimizer state stay fp32 on CPU
    assert precision.inference_dtype("auto") == (torch.bfloat16 if feature else torch.float32)


def test_cpuinfo_flags():
    x86 = "processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni\n"
    assert precision.feature_from_cpuinfo(x86, "x86_64") == "AVX512-BF16"
    assert precision.feature_from_cpuinfo(x86.replace("avx512_bf16", "amx_bf16 amx_tile"), "x86_64") == "AMX"
    assert precision.feature_from_cpuinfo("flags\t: fpu sse avx2 avx512f\n", "x86_64") is None
    assert precision.feature_from_cpuinfo("Features\t: fp asimd sve bf16 i8mm\n", "aarch64") == "ARM-BF16"


def test_bf16_autocast_loss_is_within_a_bf16_tolerance_of_fp32(tiny_model):
    """bf16 keeps 8 significant bits: each product's inputs are rounded by at most 2^-9 relative, and products
    accumulate in fp32. The logits are a fixed-sign chain of a handful of such products (2 layers, fp32 head), so
    each token's logit vector moves by a few 2^-9 of its scale; the loss, an fp32 mean of per-token CE terms (each
    moved by less than its logits' largest change), stays within 1% of fp32. The embeddings (tied with the head)
    are scaled x20 so that logits are of order 1-10 and the loss is not ln(vocabulary) whatever the arithmetic."""
    with torch.no_grad():
        tiny_model.model.embed_tokens.weight.mul_(20)
    tiny_model.config._attn_implementation = register()
    batch = collate(packed_examples([23, 7, 40, 12, 33]), True, 2)
    module = CausalLMLoss(tiny_model)
    with torch.no_grad():
        fp32 = float(module(batch)) / batch.num_trained_tokens
        with precision.Precision(torch.float32, torch.bfloat16, "cpu", "test").context():
            bf16 = float(module(batch)) / batch.num_trained_tokens
    assert abs(fp32 - torch.log(torch.tensor(49152.0)).item()) > 1.0  # the logits matter
    assert bf16 != fp32  # the products did run in bf16
    assert bf16 == pytest.approx(fp32, rel=1e-2, abs=0)


def test_startup_table_and_summary_name_the_precision(tmp_path, tiny_model_dir, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line: rich would wrap long cells
    cfg = sft_config(tmp_path, tiny_model_dir, max_steps=1, precision="auto")
    summary = train(cfg)
    expected = precision.choose_precision("auto", CPU)
    rows = {cells[1].strip(): cells[2].strip() for line in capsys.readouterr().err.splitlines()
            if len(cells := line.split("│")) == 4}
    assert rows["precision"] == expected.describe()
    assert rows["attention"] == "per-document SDPA (packed rows on cpu)"
    assert rows["compile"].startswith("off (auto: not on cpu")
    written = json.loads((Path(cfg.output_dir) / "summary.json").read_text())
    assert summary["precision"] == written["precision"] == expected.name
    assert written["attention"] == "per-document SDPA" and written["compile"] is False
