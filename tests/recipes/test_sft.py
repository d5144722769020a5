"""The SFT recipe on tiny random models: accumulation, packing, resume, early stopping, NaN guard, outputs."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sftkit.training.checkpoint import MARKER
from sftkit.errors import NonFiniteLossError, UserError
from sftkit.recipes.sft import train
from tests.recipes.trajectory import LOSS_RTOL, assert_same_trajectory, load_steps, use_recording_sgd
from tests.helpers import adapter_weights, run_recorded, sft_config, write_sft_data


def train_losses(run: Path) -> list[float]:
    return [r["train_loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "train_loss" in r]


def test_accumulation_equivalence(tmp_path, tiny_model_dir, monkeypatch):
    """8x1, 2x4 and 1x8 over the same examples give the same losses, gradients and updates at every step (fp32,
    uneven lengths), including the last, partial step: 18 training examples make steps of 8, 8 and 2.
    SGD stands in for AdamW: see tests/recipes/trajectory.py for why, and for the tolerances."""
    results = []
    steps = use_recording_sgd(monkeypatch)
    for mb, ga in ((8, 1), (2, 4), (1, 8)):
        (tmp_path / f"{mb}x{ga}").mkdir()
        cfg = sft_config(tmp_path / f"{mb}x{ga}", tiny_model_dir, micro_batch_size=mb, grad_accum_steps=ga,
                          max_steps=3)
        summary = train(cfg, quiet=True)
        results.append((summary, list(steps), train_losses(Path(cfg.output_dir))))
        del steps[:]
    (s0, steps0, losses0) = results[0]
    assert s0["steps"] == 3 and len(steps0) == 3 and len(losses0) == 3
    for summary, run_steps, losses in results[1:]:
        assert summary["trained_tokens"] == s0["trained_tokens"]
        assert losses == pytest.approx(losses0, rel=LOSS_RTOL, abs=0)
        assert_same_trajectory(run_steps, steps0)


def test_mean_of_means_would_differ(tiny_model_dir, tokenizer):
    """Guard that the test above can fail: averaging micro-batch means differs on uneven lengths."""
    from sftkit.data.dataset import Example, tokenize_examples
    from sftkit.data.batching import collate
    from sftkit.training.loss import CausalLMLoss
    from sftkit.training.attention import register
    from sftkit.models import load_model

    model = load_model(str(tiny_model_dir))
    model.config._attn_implementation = register()
    short = Example([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}], "x", 1)
    long = Example([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a much longer reply " * 5}],
                   "x", 2)
    toks, _ = tokenize_examples(tokenizer, [short, long], 512)
    loss = CausalLMLoss(model)
    with torch.no_grad():
        sums = [float(loss(collate([t], True, 2))) for t in toks]
    counts = [t.num_trained_tokens for t in toks]
    correct = sum(sums) / sum(counts)
    mean_of_means = sum(s / c for s, c in zip(sums, counts)) / 2
    assert abs(correct - mean_of_means) > 1e-3


def test_packing_equals_padding(tmp_path, tiny_model_dir, monkeypatch):
    """Packed (varlen attention) and padded batches give the same validation loss and the same training
    trajectory: losses, gradients and updates at every step (SGD for AdamW: tests/recipes/trajectory.py)."""
    out = {}
    steps = use_recording_sgd(monkeypatch)
    for packing in (True, False):
        (tmp_path / str(packing)).mkdir()
        cfg = sft_config(tmp_path / str(packing), tiny_model_dir, packing=packing, max_steps=3)
        out[packing] = (train(cfg, quiet=True), list(steps), train_losses(Path(cfg.output_dir)))
        del steps[:]
    assert out[True][0]["initial_val_loss"] == pytest.approx(out[False][0]["initial_val_loss"], rel=LOSS_RTOL, abs=0)
    assert out[True][0]["best_val_loss"] == pytest.approx(out[False][0]["best_val_loss"], rel=LOSS_RTOL, abs=0)
    assert out[True][2] == pytest.approx(out[False][2], rel=LOSS_RTOL, abs=0)
    assert_same_trajectory(out[True][1], out[False][1])


def test_trainable_change_frozen_do_not(tmp_path, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cfg = sft_config(tmp_path, tiny_model_dir, max_steps=3, save_every=1, keep_last=3,
                      lora={"dropout": 0.0, "merge": True})
    summary = train(cfg, quiet=True)
    run = Path(cfg.output_dir)
    losses = [r["train_loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
              if "train_loss" in r]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    steps = sorted((run / "checkpoints").glob("step-*"))
    assert [p.name for p in steps] == ["step-0000001", "step-0000002", "step-0000003"]
    for step in steps:
        assert sorted(p.name for p in step.iterdir()) == sorted(
            [MARKER, "optimizer.pt", "rng.pt", "scheduler.pt", "trainable.safetensors", "trainer_state.json"])
    first, last = (load_file(step / "trainable.safetensors") for step in (steps[0], steps[-1]))
    assert first.keys() == last.keys() and any("lora_A" in k for k in first)
    unchanged = [k for k in first if torch.equal(first[k], last[k])]
    assert unchanged == []  # every trainable tensor, lora_A and lora_B alike, moved after step 1
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run / "adapter")
    base_sd = base.state_dict()
    changed_lora = 0
    for name, p in tuned.named_parameters():
        if "lora_B" in name:
            changed_lora += int(p.abs().sum() > 0)  # B starts at zero
        elif "lora_" not in name:
            key = name.replace("base_model.model.", "").replace(".base_layer", "")
            assert torch.equal(p, base_sd[key]), f"frozen {name} changed"
    assert changed_lora == sum(1 for n, _ in tuned.named_parameters() if "lora_B" in n) > 0
    merged = AutoModelForCausalLM.from_pretrained(run / "merged")
    ids = torch.tensor([[1, 9690, 198, 6077, 5453, 2]])
    torch.testing.assert_close(merged(ids).logits, tuned(ids).logits, rtol=1e-4, atol=1e-4)
    assert summary["steps"] == 3
    files = sorted(p.name for p in run.iterdir())
    assert files == ["adapter", "checkpoints", "config.yaml", "data", "merged", "metrics.jsonl", "summary.json",
                     "tensorboard", "tokenizer", "versions.json"]
    for key in ("base_model", "method", "num_train_examples", "num_val_examples", "steps", "initial_val_loss",
                "best_val_loss", "best_step", "early_stopped", "trained_tokens", "train_tokens_per_second",
                "wall_seconds", "peak_memory_mb"):
        assert key in summary
    assert summary["best_val_loss"] < summary["initial_val_loss"]


def test_full_finetune_outputs_load(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = sft_config(tmp_path, tiny_model_dir, method="full", max_steps=2, learning_rate=1e-3)
    train(cfg, quiet=True)
    merged = Path(cfg.output_dir) / "merged"
    model = AutoModelForCausalLM.from_pretrained(merged)
    tok = AutoTokenizer.from_pretrained(merged)
    assert tok.chat_template and (merged / "model.safetensors").exists()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)


def test_early_stopping_on_rising_val_loss(tmp_path, tiny_model_dir):
    """A huge LR makes validation loss rise; patience 2 stops the run and keeps the best (initial) weights."""
    cfg = sft_config(tmp_path, tiny_model_dir, method="full", max_steps=20, learning_rate=0.5, eval_every=1,
                      patience=2, max_grad_norm=None)
    summary = train(cfg, quiet=True)
    assert summary["early_stopped"] is True
    assert summary["steps"] == summary["stopped_step"] < 20
    assert summary["best_step"] == summary["steps"] - 2
    assert summary["best_val_loss"] <= summary["initial_val_loss"]


def test_nan_guard_stops_before_step(tmp_path, tiny_model_dir, monkeypatch):
    import sftkit.recipes.sft as sft

    original = sft.CausalLMLoss.forward
    calls = {"n": 0}

    def poisoned(self, batch):
        value = original(self, batch)
        if not self.training:
            return value
        calls["n"] += 1
        return value * float("nan") if calls["n"] > 2 else value  # steps 1-2 fine, step 3 poisoned

    monkeypatch.setattr(sft.CausalLMLoss, "forward", poisoned)
    cfg = sft_config(tmp_path, tiny_model_dir, max_steps=5, save_every=1, micro_batch_size=18)
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 3"):
        train(cfg, quiet=True)
    ckpts = sorted((Path(cfg.output_dir) / "checkpoints").glob("step-*"))
    assert [c.name for c in ckpts] == ["step-0000001", "step-0000002"]
    assert not (Path(cfg.output_dir) / "summary.json").exists()


def test_non_finite_gradient_norm_stops_before_the_optimizer_steps(tmp_path, tiny_model_dir, monkeypatch):
    """A finite loss with an inf gradient norm also stops the run, and the optimizer never takes that step."""
    import sftkit.recipes.sft as sft

    seen = use_recording_sgd(monkeypatch)
    clip = torch.nn.utils.clip_grad_norm_

    def clip_then_poison(params, max_norm, *args, **kwargs):
        norm = clip(params, max_norm, *args, **kwargs)
        return norm * float("inf") if len(seen) == 1 else norm  # the recipe's second step

    monkeypatch.setattr(sft.torch.nn.utils, "clip_grad_norm_", clip_then_poison)
    cfg = sft_config(tmp_path, tiny_model_dir, max_steps=4, micro_batch_size=6)
    with pytest.raises(NonFiniteLossError, match="non-finite gradient norm at step 2"):
        train(cfg, quiet=True)
    assert len(seen) == 1  # step 1 was applied; step 2 was refused before optimizer.step()


def test_mass_length_drops_stop_the_run(tmp_path, tiny_model_dir):
    """More than half of the examples dropped for length is a configuration mistake, not a run to start."""
    rows = [("Hi.", "Hello.")] * 4 + [("Tell me a story.", "Once upon a time " * 40)] * 6
    data = tmp_path / "stories.jsonl"  # make_config writes its own data.jsonl
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": u},
                                                     {"role": "assistant", "content": a}]}) + "\n" for u, a in rows))
    cfg = sft_config(tmp_path, tiny_model_dir, max_steps=1,
                      data={"train_path": str(data), "max_length": 64, "overlong": "drop", "val_fraction": 0.2})
    with pytest.raises(UserError, match=r"6 of 10 examples were dropped for length; raise data.max_length \(now 64\)"):
        train(cfg, quiet=True)


def _run_cli(args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "sftkit.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def test_resume_after_sigkill_matches_uninterrupted(tmp_path, tiny_model_dir):
    import yaml

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    data = write_sft_data(tmp_path / "data.jsonl", n=40)
    base = {"model": {"name": str(tiny_model_dir)}, "data": {"train_path": str(data), "val_fraction": 0.2},
            "train": {"max_steps": 16, "micro_batch_size": 2, "grad_accum_steps": 2, "learning_rate": 5e-3,
                      "save_every": 4, "eval_every": 6, "keep_last": 2, "precision": "fp32"},
            "lora": {"dropout": 0.1}}
    runs = {}
    for name in ("straight", "killed"):
        cfg = dict(base, output_dir=str(tmp_path / name))
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        runs[name] = tmp_path / name
    assert _run_cli(["train", str(tmp_path / "straight.yaml")], env).wait(timeout=300) == 0
    proc = _run_cli(["train", str(tmp_path / "killed.yaml")], env)
    deadline = time.time() + 240
    while not (runs["killed"] / "checkpoints" / "step-0000008").exists():
        assert proc.poll() is None and time.time() < deadline, "run ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (runs["killed"] / "summary.json").exists()
    assert _run_cli(["train", str(tmp_path / "killed.yaml"), "--resume"], env).wait(timeout=300) == 0
    # Bit-equality holds, even under AdamW: the resumed process starts from the checkpoint's exact bits (weights,
    # AdamW moments, scheduler, RNG states) and repeats the same ops on the same shapes in the same order as the
    # uninterrupted one, on the same machine with the same thread count, so every rounding is the same.
    a, b = adapter_weights(runs["straight"]), adapter_weights(runs["killed"])
    for key in a:
        assert torch.equal(a[key], b[key]), key
    curve = lambda run: [(r["step"], r.get("train_loss"), r.get("val_loss"))  # noqa: E731
                         for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]
    assert curve(runs["straight"]) == curve(runs["killed"])
    assert len(curve(runs["straight"])) == 16 + 1  # 16 steps + the initial validation row


def test_crash_mid_epoch_and_mid_window_then_resume_matches_uninterrupted(tmp_path, tiny_model_dir, monkeypatch):
    """Deterministic counterpart of the SIGKILL test: the crash lands inside an epoch (resume from step 2 of 5
    per epoch) and between the two micro-batches of step 4; LoRA dropout makes the RNG state matter."""
    import sftkit.recipes.sft as sft

    def config(name):
        (tmp_path / name).mkdir()
        return sft_config(tmp_path / name, tiny_model_dir, max_steps=7, micro_batch_size=2, grad_accum_steps=2,
                           save_every=2, eval_every=3, learning_rate=5e-3, lora={"dropout": 0.1})

    straight = train(config("straight"), quiet=True)
    original, calls = sft.CausalLMLoss.forward, {"n": 0}

    def crash_on_eighth_micro_batch(self, batch):
        if self.training:
            calls["n"] += 1
            if calls["n"] == 8:  # steps 1-3 take 6 micro-batches; this is step 4's second
                raise RuntimeError("simulated crash")
        return original(self, batch)

    crashed = config("crashed")
    monkeypatch.setattr(sft.CausalLMLoss, "forward", crash_on_eighth_micro_batch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(crashed, quiet=True)
    monkeypatch.setattr(sft.CausalLMLoss, "forward", original)
    assert [p.name for p in ckpt_dirs(crashed)] == ["step-0000002"]
    resumed = train(crashed, resume=True, quiet=True)
    # bit-equality: same ops in the same order from the same bits (see the SIGKILL test above)
    a, b = adapter_weights(Path(tmp_path / "straight" / "run")), adapter_weights(Path(crashed.output_dir))
    for key in a:
        assert torch.equal(a[key], b[key]), key
    rows = lambda run: [{k: v for k, v in json.loads(x).items() if "per_second" not in k}  # noqa: E731
                        for x in (Path(run) / "metrics.jsonl").read_text().splitlines()]
    assert rows(tmp_path / "straight" / "run") == rows(crashed.output_dir)  # lr, grad_norm, epoch, losses
    for key in ("steps", "trained_tokens", "best_val_loss", "best_step"):
        assert resumed[key] == straight[key], key


def ckpt_dirs(cfg) -> list[Path]:
    return sorted((Path(cfg.output_dir) / "checkpoints").glob("step-*"))


def test_existing_run_needs_resume(tmp_path, tiny_model_dir):
    from sftkit.errors import UserError

    cfg = sft_config(tmp_path, tiny_model_dir, max_steps=1)
    train(cfg, quiet=True)
    with pytest.raises(UserError, match="--resume"):
        train(cfg, quiet=True)




def assert_same_curves(one: Path, two: Path, keys: tuple[str, ...] = ("train_loss", "val_loss")) -> None:
    rows = lambda run: [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    for r1, r2 in zip(rows(one), rows(two), strict=True):
        for key in keys:
            if key in r1:
                assert r2[key] == pytest.approx(r1[key], rel=LOSS_RTOL, abs=0), (key, r1["step"])


@pytest.mark.slow
def test_two_process_gloo_equals_one_process(tmp_path, tiny_model_dir):
    """1 process x 4 micro-batches and 2 processes x 2 give the same losses, gradients and updates at every step
    (SGD for AdamW: tests/recipes/trajectory.py)."""
    import yaml

    # 22 training rows: step 3 holds 6, so rank 1 has one micro-batch fewer and runs a no-target batch
    data = write_sft_data(tmp_path / "data.jsonl", n=28)
    common = {"model": {"name": str(tiny_model_dir)}, "data": {"train_path": str(data), "val_fraction": 0.2},
              "lora": {"dropout": 0.0}}
    one = dict(common, output_dir=str(tmp_path / "one"),
               train={"max_steps": 4, "micro_batch_size": 2, "grad_accum_steps": 4, "learning_rate": 1e-2,
                      "eval_every": 2, "precision": "fp32"})
    two = dict(common, output_dir=str(tmp_path / "two"),
               train={"max_steps": 4, "micro_batch_size": 2, "grad_accum_steps": 2, "learning_rate": 1e-2,
                      # every step: both ranks race to save
                      "eval_every": 2, "save_every": 1, "keep_last": 1, "precision": "fp32"})
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(one))
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(two))
    run_recorded(["train", str(tmp_path / "one.yaml")], tmp_path / "steps-one")
    run_recorded(["train", str(tmp_path / "two.yaml")], tmp_path / "steps-two", processes=2, port=29533)
    assert_same_curves(tmp_path / "one", tmp_path / "two")
    assert_same_trajectory(load_steps(tmp_path / "steps-two"), load_steps(tmp_path / "steps-one"))
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["world_size"] == 2
    # only rank 0 writes: one complete checkpoint, no half-written or duplicate directories
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["best", "step-0000004"]
    assert (tmp_path / "two" / "checkpoints" / "step-0000004" / MARKER).exists()
    assert math.isfinite(json.loads((tmp_path / "two" / "summary.json").read_text())["best_val_loss"])


@pytest.mark.slow
def test_two_process_fsdp_full_equals_one_process(tmp_path, tiny_model_dir):
    """Full fine-tuning sharded over 2 processes takes the steps of 1 process (SGD for AdamW), and the merged
    export is the gathered weights of the best step, bit for bit."""
    import yaml
    from safetensors.torch import load_file as load_weights

    data = write_sft_data(tmp_path / "data.jsonl", n=22)
    common = {"model": {"name": str(tiny_model_dir)}, "data": {"train_path": str(data), "val_fraction": 0.25}}
    train_cfg = {"method": "full", "max_steps": 3, "micro_batch_size": 2, "learning_rate": 1e-3, "eval_every": 2,
                 "save_every": 2, "precision": "fp32"}
    one = dict(common, output_dir=str(tmp_path / "one"), train=dict(train_cfg, grad_accum_steps=4))
    two = dict(common, output_dir=str(tmp_path / "two"), train=dict(train_cfg, grad_accum_steps=2, fsdp=True))
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(one))
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(two))
    run_recorded(["train", str(tmp_path / "one.yaml")], tmp_path / "steps-one")
    run_recorded(["train", str(tmp_path / "two.yaml")], tmp_path / "steps-two", processes=2, port=29534)
    assert_same_curves(tmp_path / "one", tmp_path / "two")
    steps = load_steps(tmp_path / "steps-two")
    assert_same_trajectory(steps, load_steps(tmp_path / "steps-one"))
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["best_step"] == 3  # so the export below is the last recorded step
    merged = load_weights(tmp_path / "two" / "merged" / "model.safetensors")
    assert merged.keys() >= steps[-1].after.keys()
    for name, weight in steps[-1].after.items():
        assert torch.equal(merged[name], weight), name
    assert (tmp_path / "two" / "checkpoints" / "step-0000002" / "COMPLETE").exists()


def test_gradient_checkpointing_gives_same_update(tmp_path, tiny_model_dir, monkeypatch):
    out = {}
    steps = use_recording_sgd(monkeypatch)
    for flag in (False, True):
        (tmp_path / str(flag)).mkdir()
        train(sft_config(tmp_path / str(flag), tiny_model_dir, gradient_checkpointing=flag, max_steps=2), quiet=True)
        out[flag] = list(steps)
        del steps[:]
    assert_same_trajectory(out[True], out[False])


def test_eval_safety_puts_the_headline_in_summary(tmp_path, tiny_model_dir, monkeypatch):
    """eval.safety alone (without after_training) runs the safety evaluation against the base model."""
    import sftkit.safety as safety
    from tests.helpers import safety_settings

    real = safety.run_safety
    monkeypatch.setattr(safety, "run_safety", lambda *a, **k: real(*a, settings=safety_settings(), **k))
    monkeypatch.setenv("SFTKIT_HOME", str(tmp_path / "home"))
    cfg = sft_config(tmp_path, tiny_model_dir, max_steps=1)
    cfg.eval.safety = True
    train(cfg, quiet=True)
    run = Path(cfg.output_dir)
    summary = json.loads((run / "summary.json").read_text())
    full = json.loads((run / "safety" / "safety.json").read_text())
    assert summary["safety"] == {**full["headline"], "output_dir": str(run / "safety")}
    assert {"refusal_rate", "over_refusal_rate", "hhh_accuracy", "refusal_rate_delta"} <= set(summary["safety"])
    assert "gain_over_prompting" not in summary  # eval.after_training is off


def test_replay_mixes_the_asked_fraction_of_general_examples(tmp_path, tiny_model_dir):
    general = write_sft_data(tmp_path / "general.jsonl", n=40, seed=7)
    cfg = sft_config(tmp_path, tiny_model_dir, max_steps=1,
                      data={"replay_path": str(general), "replay_fraction": 0.25})
    summary = train(cfg, quiet=True)
    # 24 task examples, 6 held out for validation: 18 train; 25% replay -> 18 * 0.25 / 0.75 = 6 general examples
    assert (summary["num_train_examples"], summary["num_replay_examples"], summary["num_val_examples"]) == (24, 6, 6)
    data = Path(cfg.output_dir) / "data"
    task_rows = [json.loads(x) for x in (data / "train.jsonl").read_text().splitlines()]
    replay_rows = [json.loads(x) for x in (data / "replay.jsonl").read_text().splitlines()]
    assert (len(task_rows), len(replay_rows)) == (18, 6)  # few-shot prompts in `compare` come from task rows only
    assert {r["source"] for r in replay_rows} == {str(general)} and str(general) not in {r["source"] for r in task_rows}
