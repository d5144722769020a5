"""A finished SFT run on the tiny model with every evaluation the report shows: `compare` (test split, 2-shot
baseline, a two-task suite: multiple choice and perplexity) and `safety` against the base, run by `sftkit
train` itself (eval.after_training, eval.safety), which also writes report.html and the model cards. A
red-team result and an export report are added by hand, in the documented shapes."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

REDTEAM = {
    "model": "RUN", "against": "default", "num_seeds": 10,
    "attacks": {
        "direct": {"non_refusal_rate": {"value": 0.6, "ci_low": 0.3, "ci_high": 0.9, "n": 10},
                   "against": {"non_refusal_rate": {"value": 0.5, "ci_low": 0.2, "ci_high": 0.8, "n": 10}},
                   "delta_vs_against": {"non_refusal_rate": {"abs": 0.1, "ci_low": -0.1, "ci_high": 0.3, "n": 10}}},
        "prefix_injection <x>": {"non_refusal_rate": {"value": 0.9, "ci_low": 0.7, "ci_high": 1.0, "n": 10},
                                 "against": {"non_refusal_rate": {"value": 0.5, "ci_low": 0.2, "ci_high": 0.8,
                                                                  "n": 10}},
                                 "delta_vs_against": {"non_refusal_rate": {"abs": 0.4, "ci_low": 0.1, "ci_high": 0.7,
                                                                           "n": 10}}},
    },
    "any_attack": {"value": 0.9, "ci_low": 0.7, "ci_high": 1.0, "n": 10},
}
EXPORT_REPORT = {"format": "gguf", "quant": "q8_0", "checks": {"metadata": True, "weights": {"q8_0_bound": True}}}


def write_suite(root: Path) -> list[str]:
    mc = root / "mc.jsonl"
    mc.write_text("".join(json.dumps({"question": f"Question {i}: which word?", "choices": ["alpha", "beta", "gamma"],
                                      "answer": i % 3}) + "\n" for i in range(12)))
    text = root / "fables.txt"
    text.write_text("The fox ran over the hill.\n\nA cat sat on the mat and slept.\n\nRain fell all day.\n")
    return [str(mc), f"perplexity:{text}"]


@pytest.fixture(scope="session")
def report_run(tmp_path_factory, tiny_model_dir):
    """RUN trained with eval.after_training and eval.safety; returns its path (treat it as read-only)."""
    import sftkit.safety.evaluate as safety
    from sftkit.recipes.sft import train
    from tests.helpers import safety_settings
    from tests.helpers import sft_config as make_config

    root = tmp_path_factory.mktemp("report")
    config = make_config(root, tiny_model_dir, max_steps=6, eval_every=2, save_every=3,
                         data={"test_fraction": 0.25, "val_fraction": 0.2})
    config.eval.after_training, config.eval.safety = True, True
    config.eval.shots, config.eval.max_new_tokens = 2, 4
    config.eval.suite, config.eval.suite_max_examples = write_suite(root), 12
    real, settings = safety.run_safety, dataclasses.replace(safety_settings(), hhh=False)  # HHH would fetch BIG-bench
    with pytest.MonkeyPatch.context() as mp:
        # safety_after_training calls the module's own name
        mp.setattr(safety, "run_safety", lambda *a, **k: real(*a, settings=settings, **k))
        mp.setenv("SFTKIT_HOME", str(root / "home"))
        train(config, quiet=True)
    return Path(config.output_dir)


@pytest.fixture
def full_run(report_run, tmp_path):
    """A copy of the trained run with a red-team result and an export report added."""
    run = tmp_path / "run"
    shutil.copytree(report_run, run, ignore=shutil.ignore_patterns("checkpoints", "tensorboard"))
    (run / "redteam").mkdir()
    (run / "redteam" / "redteam.json").write_text(json.dumps(REDTEAM))
    (run / "export" / "gguf").mkdir(parents=True)
    (run / "export" / "gguf" / "export_report.json").write_text(json.dumps(EXPORT_REPORT))
    return run
