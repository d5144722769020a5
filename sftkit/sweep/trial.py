"""A trial: the base config with one point of the search space, on the sweep's fixed splits, trained in an
ordinary run directory OUTPUT_DIR/trials/HASH named by a stable hash of its resolved config.

A trial trains rung by rung: `advance` runs it to a rung's step with `stop_at_step`, and the next rung resumes
its own checkpoint. The schedule spans the whole budget and resume is exact, so a trial that reaches the last
rung is the uninterrupted run of its config.yaml (`sftkit train OUTPUT_DIR/trials/HASH/config.yaml`).
"""

from __future__ import annotations

import copy
import gc
import hashlib
import json
import math
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from sftkit.errors import UserError
from sftkit.recipes.sft_config import SFTConfig
from sftkit.sweep.splits import split_path


def set_dotted(raw: dict, key: str, value) -> None:
    """raw[a][b] = value for key `a.b` (sections created as needed)."""
    *sections, last = key.split(".")
    node = raw
    for name in sections:
        node = node.setdefault(name, {})
    node[last] = value


def trial_raw(base_raw: dict, settings: dict, out_dir: Path, max_steps: int) -> dict:
    """The base mapping with `settings` applied, on the fixed splits, `max_steps` long, with no evaluation
    after training (the sweep scores the test split itself, once, after the winner is fixed)."""
    raw = copy.deepcopy(base_raw)
    for key, value in settings.items():
        set_dotted(raw, key, copy.deepcopy(value))
    raw.setdefault("data", {}).update(train_path=str(split_path(out_dir, "train")),
                                      val_path=str(split_path(out_dir, "val")), test_path=None,
                                      test_fraction=0.0, max_examples=None, format="messages")
    raw.setdefault("train", {})["max_steps"] = max_steps
    raw.setdefault("eval", {}).update(after_training=False, safety=False)
    return raw


def config_hash(config: SFTConfig, sweep_dir: Path | None = None) -> str:
    """12 hex digits of the SHA-256 of the resolved config (every field, defaults and the method's learning rate
    included; `output_dir`, and `lora` for full fine-tuning, left out; data paths inside `sweep_dir` relative to
    it) as canonical JSON: the same settings give the same hash in any order, in any process, wherever the
    sweep directory is."""
    # full fine-tuning has no adapter: its runs differ in no lora.* setting, so those are not part of the hash
    dumped = config.model_dump(mode="json", exclude={"output_dir"} | ({"lora"} if config.train.method == "full"
                                                                      else set()))
    if sweep_dir is not None:
        for key, value in dumped["data"].items():
            if isinstance(value, str) and Path(value).is_relative_to(sweep_dir):
                dumped["data"][key] = Path(value).relative_to(sweep_dir).as_posix()
    return hashlib.sha256(json.dumps(dumped, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


@dataclass
class Trial:
    """One trial: its name in the leaderboard, its settings, its resolved config and run directory."""

    name: str
    params: dict
    config: SFTConfig

    @property
    def id(self) -> str:
        return Path(self.config.output_dir).name

    @property
    def run_dir(self) -> Path:
        return Path(self.config.output_dir)

    @property
    def total_steps(self) -> int:
        return self.config.train.max_steps


class TrialBuilder:
    """Builds trials on the fixed splits, with their length from the budget: `budget.max_steps`, or
    `budget.num_tokens` over the mean trained tokens per training example, or the base's own num_epochs. The
    lengths come from the recipe's own data phase, so they count exactly the examples a trial trains on."""

    def __init__(self, base_raw: dict, budget, out_dir: Path):
        self.base_raw, self.budget, self.out_dir = base_raw, budget, Path(out_dir)
        self._lengths: dict[str, tuple[int, float]] = {}

    def build(self, name: str, settings: dict) -> Trial:
        draft = SFTConfig.model_validate(trial_raw(self.base_raw, settings, self.out_dir, 1))
        config = SFTConfig.model_validate(trial_raw(self.base_raw, settings, self.out_dir, self._steps(draft)))
        config.output_dir = str(self.out_dir / "trials" / config_hash(config, self.out_dir))
        return Trial(name, dict(settings), config)

    def _steps(self, config: SFTConfig) -> int:
        from sftkit.training.loop import Schedule

        if self.budget.max_steps:
            return self.budget.max_steps
        num_examples, trained_tokens_per_example = self._counts(config)
        examples_per_step = config.train.micro_batch_size * config.train.grad_accum_steps
        if self.budget.num_tokens:
            return max(1, math.ceil(self.budget.num_tokens / (trained_tokens_per_example * examples_per_step)))
        base_train = SFTConfig.model_validate(self.base_raw).train
        length = config.train.model_copy(update={"max_steps": base_train.max_steps})
        return Schedule.plan(num_examples, length, 1).total_steps

    def _counts(self, config: SFTConfig) -> tuple[int, float]:
        """(training examples, mean trained tokens per example) as the recipe's data phase gives them."""
        key = json.dumps([config.model.model_dump(mode="json"), config.data.model_dump(mode="json"),
                          config.train.seed], sort_keys=True)
        if key not in self._lengths:
            from sftkit.models import load_tokenizer
            from sftkit.recipes.sft_data import setup_data
            from sftkit.training.reporter import Reporter

            tokenizer = load_tokenizer(config.model.name, config.model.trust_remote_code)
            if config.model.chat_template:
                tokenizer.chat_template = config.model.chat_template
            tok = setup_data(config, tokenizer, Reporter(enabled=False)).train_tok
            self._lengths[key] = (len(tok), sum(x.num_trained_tokens for x in tok) / len(tok))
        return self._lengths[key]


def advance(trial: Trial, stop_step: int) -> dict:
    """Train `trial` up to `stop_step` (its own checkpoint resumed if it has one) and return what the recipe
    reports: a pause (`paused_at_step`, `val_loss` of the weights there) or, at the end or after early stopping,
    the run's summary. A failure is returned as `{"error": ...}` (traceback in RUN/error.log), never raised:
    one diverging trial must not end the sweep."""
    from sftkit.recipes.sft import train

    started = time.perf_counter()
    try:
        result = train(trial.config, resume=trial.run_dir.exists(), quiet=True, stop_at_step=stop_step,
                       estimate=False)
    except UserError as exc:
        result = {"error": exc.format()}
    except Exception as exc:  # a bug or an out-of-memory error in one trial; the others may still run
        trial.run_dir.mkdir(parents=True, exist_ok=True)
        (trial.run_dir / "error.log").write_text(traceback.format_exc())
        result = {"error": f"{type(exc).__name__}: {exc} (traceback in {trial.run_dir / 'error.log'})"}
    finally:
        gc.collect()
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def reached_end(result: dict) -> bool:
    """Whether the trial's training is over (its budget, or early stopping), not paused."""
    return "error" not in result and "paused_at_step" not in result
