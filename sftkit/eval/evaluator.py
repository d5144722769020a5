"""Run tasks against one model: cache look-up, scoring, summaries with intervals, `eval.json` and predictions.

The model is loaded only when a task is not in the cache, so a comparison whose base-model results are
cached never loads the base model.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sftkit.errors import UserError
from sftkit.eval import cache
from sftkit.eval.metrics import parse_extract, summarize, summarize_perplexity
from sftkit.eval.settings import EvalSettings
from sftkit.eval.tasks import Task


@dataclass
class TaskResult:
    """Per-example metric values (for paired comparisons), prediction rows, and task facts."""

    name: str
    kind: str
    headline: str
    values: dict[str, list[float]]
    predictions: list[dict]
    info: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """`{metric: {value, n, ci_low, ci_high}}`."""
        if self.kind == "perplexity":
            return {"perplexity": summarize_perplexity(self.values["nll"], self.values["num_tokens"])}
        return {name: summarize(vals) for name, vals in self.values.items()}


def _torch_dtype(name: str):
    import torch

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in dtypes:
        raise UserError(f"unknown dtype {name!r}: use float32, bfloat16 or float16")
    return dtypes[name]


class Evaluator:
    """One model (base name or run directory) and the settings every task runs with."""

    def __init__(self, model: str | None, settings: EvalSettings | None = None, use_cache: bool = True,
                 trust_remote_code: bool = False):
        self.model_name = model or "default"
        self.settings = settings or EvalSettings()
        self.trust_remote_code = trust_remote_code
        self.fingerprint = cache.model_fingerprint(model) if use_cache else None
        self._loaded = None
        self.description = self.model_name

    def _load(self):
        if self._loaded is None:
            from sftkit.models import load_for_inference

            if self.settings.num_threads:
                import torch

                torch.set_num_threads(self.settings.num_threads)
            import torch

            # 16-bit: loaded and merged in float32, then cast; a LoRA update is often smaller than a bf16 weight's
            # ulp, so merging into bf16 weights would round much of it away
            dtype = _torch_dtype(self.settings.dtype)
            load_dtype = torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype
            model, tokenizer, self.description = load_for_inference(self.model_name, load_dtype,
                                                                    self.trust_remote_code)
            if hasattr(model, "merge_and_unload"):  # an adapter run: the same function, without per-layer LoRA ops
                model = model.merge_and_unload()
            if dtype != load_dtype:
                model = model.to(dtype)
            self._loaded = (model, tokenizer)
        return self._loaded

    def release(self) -> None:
        """Drop the model (a comparison loads the base and the tuned model one after the other)."""
        self._loaded = None

    def run(self, task: Task) -> TaskResult:
        """Score `task`, from the cache when this base model already did it with the same settings."""
        key = None
        if self.fingerprint is not None:
            key = cache.result_key(self.fingerprint, task.fingerprint(), self.settings.result_settings())
            hit = cache.load(key)
            if hit is not None:
                result = TaskResult(**hit)
                # every metric is cached; only which one is the headline may differ (--metric is not in the key)
                result.name, result.headline = task.name, task.headline or self.settings.metric
                result.info = {**result.info, "cached": True}
                return result
        model, tokenizer = self._load()
        started, cpu_started = time.perf_counter(), time.process_time()
        headline = task.headline or self.settings.metric
        info = task.info()
        if task.kind == "choice":
            from sftkit.eval.choice import choice_predictions, score_items

            scores = score_items(model, tokenizer, task.items, self.settings.scoring_batch_size)
            values, rows = choice_predictions(task.items, scores)
            info["num_context_truncated"] = sum(s.context_truncated for s in scores)
        elif task.kind == "generation":
            from sftkit.eval.generation import generation_predictions
            from sftkit.generation import generate

            replies = generate(model, tokenizer, [item.messages for item in task.items], self.settings.max_new_tokens,
                               batch_size=self.settings.generation_batch_size)
            values, rows = generation_predictions(task.items, [r.prompt for r in replies], [r.text for r in replies],
                                                  parse_extract(self.settings.extract))
            if self.settings.extract is not None:
                info["num_no_answer_extracted"] = sum(r["extracted"] is None for r in rows)
        else:
            from sftkit.eval.perplexity import score_texts

            values, rows = score_texts(model, tokenizer, task.items, self.settings.scoring_batch_size)
            info["num_truncated"] = sum(bool(r.get("truncated")) for r in rows)
        info["seconds"] = round(time.perf_counter() - started, 2)
        info["cpu_seconds"] = round(time.process_time() - cpu_started, 2)  # all threads; robust to a busy machine
        result = TaskResult(task.name, task.kind, headline, values, rows, info)
        if key is not None:
            cache.save(key, asdict(result))
        result.info["cached"] = False
        return result


def write_results(output_dir: str | Path, model: str, results: list[TaskResult], settings: EvalSettings,
                  extra_settings: dict | None = None) -> dict:
    """Write `eval.json` and `predictions.jsonl` (one row per example, with its task name); return eval.json."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "model": model,
        "tasks": {r.name: r.summary() for r in results},
        "headline": {r.name: r.headline for r in results},
        "task_info": {r.name: r.info for r in results},
        "settings": {**asdict(settings), **(extra_settings or {})},
    }
    (out / "eval.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as handle:
        for r in results:
            for row in r.predictions:
                handle.write(json.dumps({"task": r.name, **row}, ensure_ascii=False) + "\n")
    return report


def evaluate(model: str | None, tasks: list[Task], output_dir: str | Path, settings: EvalSettings | None = None,
             use_cache: bool = True, trust_remote_code: bool = False, extra_settings: dict | None = None) -> dict:
    """`sftkit eval`: run loaded tasks (load them first, so a bad spec fails before the model loads)."""
    settings = settings or EvalSettings()
    evaluator = Evaluator(model, settings, use_cache, trust_remote_code)
    results = [evaluator.run(task) for task in tasks]
    return write_results(output_dir, evaluator.description, results, settings, extra_settings)
