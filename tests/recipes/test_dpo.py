"""The DPO recipe on tiny random models: ln 2 at the first step, frozen references, learning, equivalences,
exact resume, starting from an SFT run, loadable outputs, config and CLI errors."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import sftkit.recipes.dpo as dpo_recipe
import sftkit.recipes.dpo_reference as dpo_reference
from sftkit.training import checkpoint
from sftkit.config import load_config
from sftkit.errors import ConfigError
from sftkit.recipes.dpo import train_dpo
from sftkit.recipes.dpo_config import DPOConfig
from tests.helpers import run_recorded
from tests.recipes.trajectory import LOSS_RTOL, assert_same_trajectory, load_steps, use_recording_sgd

LN2 = math.log(2)
BETA = 0.1  # dpo.beta's default, which these tests train with


def write_pairs(path: Path, n: int = 24, seed: int = 0) -> Path:
    """Sums answered (chosen) or brushed off (rejected), with uneven lengths."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            a, b = rng.randint(1, 99), rng.randint(1, 99)
            f.write(json.dumps({"prompt": f"Add {a} and {b}." + " Please." * rng.randint(0, 2),
                                "chosen": f"{a} plus {b} is {a + b}.",
                                "rejected": "No." + " Really no." * rng.randint(0, 3)}) + "\n")
    return path


def make_config(tmp_path: Path, model, out: str = "run", lora: dict | None = None, dpo: dict | None = None,
                data: dict | None = None, **train) -> DPOConfig:
    pairs = tmp_path / "pairs.jsonl"
    if not pairs.exists():
        write_pairs(pairs)
    return DPOConfig.model_validate({
        "model": {"name": str(model)},
        "data": {"train_path": str(pairs), "val_fraction": 0.25, **(data or {})},
        # fp32, as in tests/recipes/test_sft.py's make_config: tolerances are derived for fp32
        "train": {"max_steps": 2, "micro_batch_size": 4, "learning_rate": 1e-2, "warmup_ratio": 0.0,
                  "eval_every": 100, "save_every": 100, "precision": "fp32", **train},
        "lora": {"dropout": 0.0, **(lora or {})}, "dpo": dpo or {}, "output_dir": str(tmp_path / out)})


def metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def margin_atol(row: dict, prefix: str = "", beta: float = BETA) -> float:
    """How far two correct runs' mean reward margins may differ. Sequence log-probabilities are sums of negative
    per-token log-probabilities (no cancellation: each within LOSS_RTOL); a margin is beta times a difference of
    four of them (policy and reference, chosen and rejected), so it carries their absolute errors, not relative."""
    return 2 * beta * LOSS_RTOL * (abs(row[prefix + "chosen_logp"]) + abs(row[prefix + "rejected_logp"]))


def assert_same_metrics(rows: list[dict], reference: list[dict]) -> None:
    """The continuous metrics of each row agree: log-probabilities to LOSS_RTOL, reward margins to margin_atol,
    and the loss -log(sigmoid(margin)), whose slope is below 1, to margin_atol too. Reward accuracy is left out:
    it counts margins above 0, and a margin within rounding noise of 0 may fall on either side elsewhere."""
    for row, ref in zip(rows, reference, strict=True):
        assert row["step"] == ref["step"]
        for prefix in ("", "val_"):
            if prefix + "chosen_logp" not in ref:
                continue
            for key in ("chosen_logp", "rejected_logp"):
                assert row[prefix + key] == pytest.approx(ref[prefix + key], rel=LOSS_RTOL, abs=0), (key, ref["step"])
            for key in ("reward_margin", "loss" if prefix else "train_loss"):
                assert row[prefix + key] == pytest.approx(ref[prefix + key], rel=0, abs=margin_atol(ref, prefix)), (
                    prefix + key, ref["step"])


def test_first_step_loss_is_ln2_and_base_weights_never_change(tmp_path, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    summary = train_dpo(make_config(tmp_path, tiny_model_dir, max_steps=3), quiet=True)
    rows = metrics(tmp_path / "run")
    assert set(rows[0]) == {"step", "val_loss", "val_reward_accuracy", "val_reward_margin", "val_chosen_logp",
                            "val_rejected_logp"}
    assert {"train_loss", "reward_accuracy", "reward_margin", "chosen_logp", "rejected_logp"} <= set(rows[1])
    # exactly ln 2 but for float32 rounding: while B = 0 the policy adds exact zeros to the reference's computation
    assert rows[0]["val_loss"] == pytest.approx(LN2, abs=1e-6)
    assert rows[0]["val_reward_accuracy"] == 0.0 and rows[0]["val_reward_margin"] == 0.0
    assert rows[1]["train_loss"] == pytest.approx(LN2, abs=1e-6)
    assert rows[2]["train_loss"] < LN2  # the policy moved away from its reference
    assert summary["reference"] == "adapter_disabled"
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "run/adapter")
    changed = 0
    for name, p in tuned.named_parameters():
        if "lora_B" in name:
            changed += int(p.abs().sum() > 0)
        elif "lora_" not in name:
            key = name.replace("base_model.model.", "").replace(".base_layer", "")
            assert torch.equal(p, base[key]), f"frozen {name} changed"
    assert changed == sum("lora_B" in n for n, _ in tuned.named_parameters()) > 0


def test_full_finetune_reference_copy_never_changes(tmp_path, tiny_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM

    made = []

    class Recording(dpo_recipe.SequenceLogProbs):
        def __init__(self, model):
            super().__init__(model)
            made.append(self)

    monkeypatch.setattr(dpo_recipe, "SequenceLogProbs", Recording)
    monkeypatch.setattr(dpo_reference, "SequenceLogProbs", Recording)
    summary = train_dpo(make_config(tmp_path, tiny_model_dir, method="full", learning_rate=1e-3), quiet=True)
    assert summary["reference"] == "frozen_copy" and len(made) == 2
    # the policy's module is made first, then the reference's frozen copy of it
    policy, reference = made[0].model, made[1].model
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    assert all(torch.equal(v, base[k]) for k, v in reference.state_dict().items())
    assert not any(p.requires_grad for p in reference.parameters())
    key = "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(policy.state_dict()[key], reference.state_dict()[key])  # the test can fail
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "run/merged").state_dict()
    assert not torch.equal(exported["model.layers.0.mlp.up_proj.weight"], base["model.layers.0.mlp.up_proj.weight"])
    assert metrics(tmp_path / "run")[1]["train_loss"] == pytest.approx(LN2, abs=1e-6)


def test_precomputed_reference_equals_frozen_copy(tmp_path, tiny_model_dir, monkeypatch):
    """The table of reference log-probabilities (computed before training, in other batches than the steps use)
    gives the metrics and steps of a frozen copy run beside the policy (SGD for AdamW: trajectory.py)."""
    runs = {}
    steps = use_recording_sgd(monkeypatch)
    for precompute in (False, True):
        cfg = make_config(tmp_path, tiny_model_dir, out=f"pre{precompute}", method="full", learning_rate=1e-3,
                          max_steps=3, eval_every=3, dpo={"precompute_reference": precompute})
        runs[precompute] = (train_dpo(cfg, quiet=True), metrics(Path(cfg.output_dir)), list(steps))
        del steps[:]
    assert runs[True][0]["reference"] == "precomputed" and runs[False][0]["reference"] == "frozen_copy"
    assert (tmp_path / "preTrue/reference_logps.safetensors").exists()
    assert_same_metrics(runs[True][1], runs[False][1])
    assert_same_trajectory(runs[True][2], runs[False][2])


def test_training_raises_reward_accuracy_on_training_pairs(tmp_path, tiny_model_dir):
    data = write_pairs(tmp_path / "pairs.jsonl")
    cfg = make_config(tmp_path, tiny_model_dir, max_steps=8, eval_every=8, data={"val_path": str(data)})
    summary = train_dpo(cfg, quiet=True)
    assert summary["initial_val_reward_accuracy"] == 0.0
    assert summary["val_reward_accuracy"] >= 0.9  # validation = the 24 training pairs
    assert summary["best_val_loss"] < LN2 - 0.1
    assert summary["val_reward_margin"] > 0


def test_ipo_starts_at_its_target_and_learns(tmp_path, tiny_model_dir):
    cfg = make_config(tmp_path, tiny_model_dir, max_steps=6, eval_every=6, dpo={"loss_type": "ipo", "beta": 0.5})
    summary = train_dpo(cfg, quiet=True)
    assert metrics(tmp_path / "run")[0]["val_loss"] == pytest.approx((1 / (2 * 0.5)) ** 2)  # h = 0 at the start
    assert summary["best_val_loss"] < 0.9 and summary["val_reward_accuracy"] > 0.5


def test_packing_and_accumulation_give_the_same_update(tmp_path, tiny_model_dir, monkeypatch):
    """Packed or padded, 4 x 1 or 1 x 4: the same metrics, gradients and updates at every step (SGD for AdamW:
    tests/recipes/trajectory.py)."""
    runs = {}
    steps = use_recording_sgd(monkeypatch)
    for name, packing, mb, ga in (("packed4x1", True, 4, 1), ("padded4x1", False, 4, 1), ("packed1x4", True, 1, 4)):
        cfg = make_config(tmp_path, tiny_model_dir, out=name, packing=packing, micro_batch_size=mb,
                          grad_accum_steps=ga, max_steps=3, eval_every=3)
        train_dpo(cfg, quiet=True)
        runs[name] = (list(steps), metrics(tmp_path / name))
        del steps[:]
    for name in ("padded4x1", "packed1x4"):
        assert_same_metrics(runs[name][1], runs["packed4x1"][1])
        assert_same_trajectory(runs[name][0], runs["packed4x1"][0])


def test_resume_after_interruption_is_exact(tmp_path, tiny_model_dir, monkeypatch):
    straight = make_config(tmp_path, tiny_model_dir, out="straight", max_steps=6, save_every=2, eval_every=3,
                           lora={"dropout": 0.1})
    train_dpo(straight, quiet=True)
    killed = make_config(tmp_path, tiny_model_dir, out="killed", max_steps=6, save_every=2, eval_every=3,
                         lora={"dropout": 0.1})
    original = checkpoint.write_checkpoint

    def save_then_die(root, step, *args, **kwargs):
        original(root, step, *args, **kwargs)
        if step == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "write_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_dpo(killed, quiet=True)
    monkeypatch.setattr(checkpoint, "write_checkpoint", original)
    train_dpo(killed, resume=True, quiet=True)
    a = load_file(tmp_path / "straight/adapter/adapter_model.safetensors")
    b = load_file(tmp_path / "killed/adapter/adapter_model.safetensors")
    # bit-equality, even under AdamW: the resumed run starts from the checkpoint's exact bits and repeats the same
    # ops in the same order, on the same machine and thread count (see tests/recipes/test_sft.py's resume tests)
    assert all(torch.equal(a[k], b[k]) for k in a)
    curve = lambda run: [(r["step"], r.get("train_loss"), r.get("val_loss")) for r in metrics(run)]  # noqa: E731
    assert curve(tmp_path / "straight") == curve(tmp_path / "killed")
    assert len(curve(tmp_path / "killed")) == 6 + 1


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, tiny_model_dir):
    """A 2-step LoRA SFT run (adapter only, no merged/) to start DPO from."""
    from sftkit.recipes.sft_config import SFTConfig
    from sftkit.recipes.sft import train

    tmp = tmp_path_factory.mktemp("sft")
    data = tmp / "sft.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Add {i} and {i}."},
                                                     {"role": "assistant", "content": f"{2 * i}."}]}) + "\n"
                            for i in range(12)))
    cfg = SFTConfig.model_validate({"model": {"name": str(tiny_model_dir)},
                                    "data": {"train_path": str(data), "val_fraction": 0.0},
                                    "train": {"max_steps": 2, "learning_rate": 1e-2, "warmup_ratio": 0.0},
                                    "lora": {"dropout": 0.0}, "output_dir": str(tmp / "run")})
    train(cfg, quiet=True)
    assert not (tmp / "run/merged").exists()
    return tmp / "run"


def test_start_from_sft_adapter_merge(tmp_path, tiny_model_dir, sft_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    summary = train_dpo(make_config(tmp_path, sft_run, max_steps=2), quiet=True)
    run = tmp_path / "run"
    assert metrics(run)[0]["val_loss"] == pytest.approx(LN2, abs=1e-6)  # reference = the SFT model exactly
    assert summary["outputs"] == {"adapter": str(run / "adapter"), "merged": str(run / "merged")}
    sft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), sft_run / "adapter")
    dpo_model = PeftModel.from_pretrained(sft.merge_and_unload(), run / "adapter")
    merged = AutoModelForCausalLM.from_pretrained(run / "merged")
    ids = torch.tensor([[1, 9690, 198, 6077, 5453, 2]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, dpo_model(ids).logits, rtol=1e-4, atol=1e-4)


def test_start_from_sft_adapter_continue(tmp_path, tiny_model_dir, sft_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    summary = train_dpo(make_config(tmp_path, sft_run, max_steps=2, dpo={"sft_adapter": "continue"}), quiet=True)
    run = tmp_path / "run"
    assert summary["reference"] == "precomputed" and summary["outputs"] == {"adapter": str(run / "adapter")}
    # The reference is the starting policy, precomputed in other batches than step 1's: the margin is 0 up to
    # rounding (margin_atol), and the loss -log(sigmoid(margin)) is ln 2 to half that (its slope at 0 is 1/2).
    first = metrics(run)[1]
    assert first["reward_margin"] == pytest.approx(0.0, abs=margin_atol(first))
    assert first["train_loss"] == pytest.approx(LN2, abs=margin_atol(first) / 2)
    start = load_file(sft_run / "adapter/adapter_model.safetensors")
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run / "adapter")
    assert json.loads((run / "adapter/adapter_config.json").read_text())["r"] == 16
    after = {k: v for k, v in tuned.state_dict().items() if "lora_" in k}
    assert len(after) == len(start)
    assert any(not torch.equal(after[k.replace(".weight", ".default.weight")], v) for k, v in start.items())


def test_config_problems_listed_together_and_example_validates(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(None, ["dpo.beta=0", "dpo.los_type=ipo", "data.max_length=8"], model_cls=DPOConfig)
    assert sorted(err.value.problems) == ["data.max_length: Input should be greater than or equal to 16 (got 8)",
                                          "dpo.beta: Input should be greater than 0 (got 0)",
                                          "unknown key 'dpo.los_type'; did you mean 'dpo.loss_type'?"]
    with pytest.raises(ConfigError) as err:
        load_config(None, ["train.fsdp=true", "dpo.sft_adapter=continue", "train.method=full", "train.patience=2",
                           "data.val_fraction=0"], model_cls=DPOConfig)
    assert len(err.value.problems) == 4  # no train_path, fsdp, continue without LoRA, patience without validation
    out = subprocess.run([sys.executable, "-m", "sftkit.cli", "config", "example", "dpo"], capture_output=True,
                         text=True, check=True).stdout
    (tmp_path / "example.yaml").write_text(out.replace("train_path: null", "train_path: x.jsonl"))
    cfg = load_config(str(tmp_path / "example.yaml"), model_cls=DPOConfig)
    assert (cfg.dpo.beta, cfg.dpo.loss_type, cfg.train.learning_rate) == (0.1, "sigmoid", 5e-5)
    shipped = load_config(str(Path(__file__).resolve().parents[2] / "examples/dpo.yaml"), model_cls=DPOConfig)
    assert shipped.data.train_path == "examples/data/preferences.jsonl"


def test_cli_bad_row_exits_2_with_file_and_line(tmp_path, tiny_model_dir):
    import yaml

    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"prompt": "Hi?", "chosen": "Hello.", "rejected": "Bye."}) + "\n"
                    + json.dumps({"prompt": "Hi?", "chosen": "Hello."}) + "\n")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": {"name": str(tiny_model_dir)},
                                                     "data": {"train_path": str(data)},
                                                     "output_dir": str(tmp_path / "run")}))
    proc = subprocess.run([sys.executable, "-m", "sftkit.cli", "dpo", str(tmp_path / "c.yaml")], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert f"{data}:2: missing `rejected`" in proc.stderr.replace("\n", "")


@pytest.mark.slow
def test_two_process_gloo_equals_one_process(tmp_path, tiny_model_dir):
    """8 pairs per step as 1 process x 4 micro-batches or 2 processes x 2; the third step is partial (2 pairs),
    so one process runs a zero-weight pair to keep DDP's backward passes matched. The same metrics, gradients and
    updates at every step (SGD for AdamW: tests/recipes/trajectory.py)."""
    import yaml

    pairs = write_pairs(tmp_path / "pairs.jsonl")
    common = {"model": {"name": str(tiny_model_dir)}, "data": {"train_path": str(pairs), "val_fraction": 0.25},
              "lora": {"dropout": 0.0}}
    for name, ga in (("one", 4), ("two", 2)):
        cfg = dict(common, output_dir=str(tmp_path / name), train={"max_steps": 3, "micro_batch_size": 2,
                   "grad_accum_steps": ga, "learning_rate": 1e-2, "warmup_ratio": 0.0, "eval_every": 3,
                   "precision": "fp32"})
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    run_recorded(["dpo", str(tmp_path / "one.yaml")], tmp_path / "steps-one")
    run_recorded(["dpo", str(tmp_path / "two.yaml")], tmp_path / "steps-two", processes=2, port=29547)
    assert_same_metrics(metrics(tmp_path / "two"), metrics(tmp_path / "one"))
    assert_same_trajectory(load_steps(tmp_path / "steps-two"), load_steps(tmp_path / "steps-one"))
    assert json.loads((tmp_path / "two/summary.json").read_text())["world_size"] == 2


def _one_step_gradients(cfg: DPOConfig, tiny_model_dir) -> dict[str, torch.Tensor]:
    """Gradients of one DPO `train_step`, read as the update of plain SGD with lr 1 (linear in the gradient)."""
    from sftkit.models import load_tokenizer
    from sftkit.recipes.dpo_reference import start_point
    from sftkit.training.distributed import World
    from sftkit.training.dpo_loss import collate_pairs
    from sftkit.training.reporter import Reporter
    from sftkit.training.state import TrainState

    tokenizer = load_tokenizer(str(tiny_model_dir))
    data = dpo_recipe.setup_data(cfg, tokenizer)
    torch.manual_seed(cfg.train.seed)
    rt, reference, _, _ = dpo_recipe.setup_model(cfg, start_point(cfg), data, World(), Reporter(enabled=False))
    trainable = {n: p for n, p in rt.model.named_parameters() if p.requires_grad}
    rt.optimizer = torch.optim.SGD(list(trainable.values()), lr=1.0)
    before = {n: p.detach().clone() for n, p in trainable.items()}
    indices, micro = rt.micro_batches(0, len(data.train_tok))
    batches = [(collate_pairs([data.train_tok[j] for j in mb], cfg.train.packing, tokenizer.pad_token_id), mb, True)
               for mb in micro]
    rt.module.train()  # checkpointing (and dropout) act in training mode only
    dpo_recipe.train_step(rt, TrainState(), batches, len(indices), reference, cfg.dpo)
    return {n: before[n] - p.detach() for n, p in trainable.items()}


def test_gradient_checkpointing_with_lora_keeps_the_adapter_gradients(tmp_path, tiny_model_dir):
    """LoRA freezes the embeddings, so under gradient checkpointing the layers' inputs need no gradient; the
    adapter of every layer must still get the same gradient as without checkpointing (a cut graph gives none)."""
    grads = {flag: _one_step_gradients(make_config(tmp_path, tiny_model_dir, out=f"gc-{flag}", max_grad_norm=None,
                                                   gradient_checkpointing=flag), tiny_model_dir)
             for flag in (False, True)}
    lora_b = [n for n in grads[True] if "lora_B" in n]
    assert len(lora_b) == 2 * 7  # 2 layers x 7 linear modules
    assert all(grads[True][n].abs().sum() > 0 for n in lora_b)
    for name, value in grads[True].items():
        # recomputation repeats the forward's own operations: only fp32 rounding of the SGD subtraction differs
        torch.testing.assert_close(value, grads[False][name], rtol=1e-5, atol=1e-7)


def test_cut_input_gradients_would_be_caught(tmp_path, tiny_model_dir, monkeypatch):
    """The guard above can fail: with reentrant checkpointing and the inputs' gradients cut (no
    `enable_input_require_grads`), no adapter weight is reached and the step cannot run backward."""
    from transformers import PreTrainedModel

    import sftkit.training.loop as loop

    real = loop.prepare_model

    def reentrant(model, train, lora=None):
        model = real(model, train.model_copy(update={"gradient_checkpointing": False}), lora)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        return model

    monkeypatch.setattr(PreTrainedModel, "enable_input_require_grads", lambda self: None)
    monkeypatch.setattr(dpo_recipe, "prepare_model", reentrant)
    with pytest.raises(RuntimeError, match="does not require grad"):
        _one_step_gradients(make_config(tmp_path, tiny_model_dir, max_grad_norm=None, gradient_checkpointing=True),
                            tiny_model_dir)
