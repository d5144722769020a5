"""`sftkit estimate`: exact parameter and token counts, FLOP and memory arithmetic, activation coefficients, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from sftkit.errors import UserError
from sftkit.estimate import ACTIVATION_ELEMENTS, DROPOUT_MASK_BYTES, estimate_run, parse_prices
from tests.helpers import sft_config

LAYER_MATMUL_PARAMS = 64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 128  # tiny model: q, o; k, v (2 kv heads); MLP


def test_parameters_match_the_real_model(tmp_path, tiny_model_dir):
    from sftkit.config import LoraSection
    from sftkit.models import apply_lora, count_parameters, load_model

    for method in ("lora", "full"):
        cfg = sft_config(tmp_path, tiny_model_dir, method=method)
        est = estimate_run(cfg, measure=False)
        model = load_model(str(tiny_model_dir))
        if method == "lora":
            model = apply_lora(model, LoraSection(r=16, alpha=32, dropout=0.0))
        trainable, total = count_parameters(model)
        assert (est["parameters"]["trainable"], est["parameters"]["total"]) == (trainable, total)
        assert est["memory_mb"]["gradients"] == round(trainable * 4 / 2**20)
        assert est["memory_mb"]["optimizer"] == round(trainable * 8 / 2**20)


def test_tokens_and_steps_match_a_real_run(tmp_path, tiny_model_dir):
    """The estimate's run tokens are the recipe's own: same split, same order, same steps."""
    from sftkit.recipes.sft import train

    cfg = sft_config(tmp_path, tiny_model_dir, max_steps=3, micro_batch_size=3)
    est = estimate_run(cfg, measure=False)
    summary = train(cfg, quiet=True)
    assert est["data"]["run_trained_tokens"] == summary["trained_tokens"]
    assert est["steps"]["total"] == summary["steps"] == 3
    assert est["data"]["train_examples"] == summary["num_train_examples"] == 18
    assert est["data"]["padding_fraction"] == 0.0
    assert est["steps"]["evaluations"] == 2  # before training and at the last step (eval_every 100)


def test_flops_follow_the_6n_convention_for_full_fine_tuning(tmp_path, tiny_model_dir):
    cfg = sft_config(tmp_path, tiny_model_dir, method="full", max_steps=2)
    est = estimate_run(cfg, measure=False)
    tokens, trained = est["data"]["run_tokens"], est["data"]["run_trained_tokens"]
    decoder = 6 * LAYER_MATMUL_PARAMS * 2 * tokens
    head = 4 * 2 * 49152 * 64 * trained
    attention = est["flops"]["train"] - decoder - head
    assert 0 < attention < 0.2 * decoder  # causal attention on ~30-token examples: small next to the matmuls
    lora = estimate_run(sft_config(tmp_path, tiny_model_dir, method="lora", max_steps=2), measure=False)
    gc = estimate_run(sft_config(tmp_path, tiny_model_dir, method="full", max_steps=2,
                                  gradient_checkpointing=True), measure=False)
    assert gc["flops"]["train"] - est["flops"]["train"] == pytest.approx((decoder + attention) / 3)
    assert lora["flops"]["train"] < est["flops"]["train"]  # no weight gradients for the frozen weights


@pytest.mark.parametrize("kind,method,dropout", [("full", "full", 0.0), ("lora", "lora", 0.0),
                                                 ("lora_dropout", "lora", 0.05)])
def test_activation_coefficients_hold_on_another_shape(tiny_model_dir, kind, method, dropout):
    """The per-token saved-activation formula, derived on SmolLM2-135M, within 15% on the tiny shape."""
    from sftkit.data.dataset import TokenizedExample
    from sftkit.data.batching import collate
    from sftkit.training.loss import CausalLMLoss
    from sftkit.config import LoraSection, TrainSection
    from sftkit.models import load_model
    from sftkit.training.loop import prepare_model

    model = prepare_model(load_model(str(tiny_model_dir)), TrainSection(packing=True, gradient_checkpointing=False),
                          LoraSection(r=16, alpha=32, dropout=dropout) if method == "lora" else None)
    ids = list(range(10, 210))
    batch = collate([TokenizedExample(ids, [-100] * 190 + ids[190:], "x", 1)] * 4, True, 2)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        CausalLMLoss(model)(batch)
    measured = sum(saved.values()) / batch.num_tokens / 2  # bytes per token per layer
    expected = 4 * ACTIVATION_ELEMENTS[kind](64, 128, 32, 16) + (DROPOUT_MASK_BYTES(64, 128) if dropout else 0)
    assert measured == pytest.approx(expected, rel=0.15)


def test_cpu_time_is_measured_and_scaled(tmp_path, tiny_model_dir):
    cfg = sft_config(tmp_path, tiny_model_dir, max_steps=4)
    est = estimate_run(cfg, prices={"cpu": 0.5, "H100": 3.0})
    cpu = est["time"]["cpu"]
    assert cpu["seconds"] > cpu["train_seconds"] > 0  # validation passes add forward time
    assert cpu["cost"] == pytest.approx(cpu["seconds"] / 3600 * 0.5)
    assert "one decoder layer" in cpu["basis"]
    h100 = est["time"]["H100"]
    validation = 2 * est["parameters"]["total"] * est["data"]["val_tokens"] * est["steps"]["evaluations"]
    assert h100["seconds"] == pytest.approx((est["flops"]["train"] + validation) / (989e12 * 0.35))
    assert h100["cost"] == pytest.approx(h100["seconds"] / 3600 * 3.0)
    assert est["time"]["A100"]["seconds"] / h100["seconds"] == pytest.approx(989 / 312)
    json.dumps(est)  # the lead stores it in summary.json


def test_prices_are_parsed_or_refused():
    assert parse_prices(["h100=2.5", "cpu=0"]) == {"H100": 2.5, "cpu": 0.0}
    for bad in (["H100"], ["TPU=1"], ["L4=-1"], ["A100=cheap"]):
        with pytest.raises(UserError, match="--price"):
            parse_prices(bad)


def test_cli_estimate_json_and_bad_price(tmp_path, tiny_model_dir):
    cfg = sft_config(tmp_path, tiny_model_dir)
    path = tmp_path / "cfg.yaml"
    from sftkit.config import to_yaml

    path.write_text(to_yaml(cfg))
    cli = [sys.executable, "-c", "from sftkit.cli import main; main()", "estimate", str(path)]
    ok = subprocess.run(cli + ["--no-measure", "--json", "--set", "train.method=full"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)
    assert result["method"] == "full" and "cpu" not in result["time"]
    assert result["parameters"]["trainable"] == result["parameters"]["total"]
    bad = subprocess.run(cli + ["--no-measure", "--price", "H100=x"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--price" in bad.stderr


def test_padded_runs_count_padding_and_time_the_padded_path(tmp_path, tiny_model_dir):
    packed = estimate_run(sft_config(tmp_path, tiny_model_dir, max_steps=3), measure=False)
    padded = estimate_run(sft_config(tmp_path, tiny_model_dir, max_steps=3, packing=False))
    assert padded["data"]["run_tokens"] == packed["data"]["run_tokens"]  # same examples, same order
    assert 0 < padded["data"]["padding_fraction"] < 0.5
    assert padded["flops"]["train"] > packed["flops"]["train"]  # padding positions are computed too
    assert padded["time"]["cpu"]["train_seconds"] > 0 and "forward+backward" in padded["time"]["cpu"]["basis"]
