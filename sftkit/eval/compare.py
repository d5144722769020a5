"""Fine-tune or just prompt? Base zero-shot, base k-shot and the tuned model on held-out test data, plus the
forgetting suite for base and tuned, in one `comparison.json`.

Test data is the run's own `data/test.jsonl` (never used for training or early stopping) or a given file.
Few-shot examples come from the run's `data/train.jsonl` only. The gain of the tuned model over the better
of the two prompting baselines has a paired-bootstrap 95% interval (same test examples for both).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from sftkit.errors import UserError
from sftkit.eval.evaluator import Evaluator, TaskResult
from sftkit.eval.metrics import paired_difference
from sftkit.eval.settings import CompareSettings, EvalSettings
from sftkit.eval.suite import forgetting_table, load_suite
from sftkit.eval.tasks import add_shots, load_task


def _run_config(run: Path) -> dict:
    """The run's resolved `config.yaml` (empty when missing; every value then takes its default)."""
    path = run / "config.yaml"
    if not path.is_file():
        return {}
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


_PRECISION_DTYPES = {"auto": "auto", "fp32": "float32", "bf16": "bfloat16"}  # train.precision -> EvalSettings.dtype


def _pick(value, section: dict, key: str, default):
    return value if value is not None else section.get(key, default) if section.get(key) is not None else default


def run_compare(run_dir: str | Path, test_path: str | None = None, shots: int | None = None,
                output_dir: str | Path | None = None, suite: list[str] | None = None,
                suite_max_examples: int | None = None, max_new_tokens: int | None = None,
                metric: str | None = None, extract: str | None = None, use_cache: bool = True,
                seed: int = 1234, num_threads: int | None = None, console=None, dtype: str | None = None) -> dict:
    """Evaluate base zero-shot, base k-shot and tuned on the test data, and the suite for base and tuned.

    Unset arguments come from the run's `config.yaml` `eval:` section (`num_threads` and `dtype`, as
    `precision`, from `train:`), then from the defaults. `suite=[]`
    skips the forgetting suite. Writes `comparison.json` and `predictions.jsonl` to `output_dir` (default
    RUN/compare) and returns the comparison; `gain_over_prompting` and `retention` are the summary keys.
    """
    from sftkit.models import is_run_dir, run_base_model

    run = Path(run_dir)
    if not is_run_dir(run):
        raise UserError(f"{run} is not a run directory (no summary.json, adapter/ or merged/): pass the "
                        "output_dir of `sftkit train`")
    config = _run_config(run)
    ev = config.get("eval") or {}
    shots = _pick(shots, ev, "shots", CompareSettings.shots)
    suite = suite if suite is not None else ev.get("suite")
    suite_max_examples = _pick(suite_max_examples, ev, "suite_max_examples", CompareSettings.suite_max_examples)
    settings = EvalSettings.given(max_new_tokens=_pick(max_new_tokens, ev, "max_new_tokens", None),
                                  metric=_pick(metric, ev, "metric", None),
                                  extract=_pick(extract, ev, "extract", None),
                                  num_threads=_pick(num_threads, config.get("train") or {}, "num_threads", None),
                                  dtype=dtype or _PRECISION_DTYPES[(config.get("train") or {}).get("precision")
                                                                   or "auto"])
    trust = bool((config.get("model") or {}).get("trust_remote_code", False))
    test_file = Path(test_path) if test_path else run / "data" / "test.jsonl"
    if not test_file.is_file():
        raise UserError(f"no test data at {test_file}: train with data.test_fraction > 0 (or data.test_path), "
                        "or pass --test FILE")
    test_task = load_task(str(test_file), seed=seed)
    if test_task.kind != "generation":
        raise UserError("compare needs conversations (the last assistant turn is the answer), not a "
                        f"{test_task.kind} task", str(test_file))
    tasks = {"base_zero_shot": test_task}
    train_file = run / "data" / "train.jsonl"
    if shots > 0:
        if not train_file.is_file():
            raise UserError(f"the {shots}-shot baseline draws examples from {train_file}, which is missing; "
                            "pass --shots 0 to skip it")
        pool = load_task(str(train_file)).items
        tasks["base_k_shot"] = add_shots(test_task, pool, shots, seed)
    suite_tasks = load_suite(suite, suite_max_examples) if suite != [] else []
    say = console.print if console is not None else (lambda *_: None)

    started = time.perf_counter()
    base_name = run_base_model(run)
    results: dict[str, TaskResult] = {}
    base = Evaluator(base_name, settings, use_cache, trust)
    for label, task in tasks.items():
        setting = f"{shots}-shot" if label == "base_k_shot" else "zero-shot"
        say(f"[dim]base model, {setting}: {task.name} ({len(task.items)} examples)[/dim]")
        results[label] = base.run(task)
    base_suite = []
    for task in suite_tasks:
        say(f"[dim]base model, suite: {task.name} ({len(task.items)} examples)[/dim]")
        base_suite.append(base.run(task))
    base.release()
    tuned = Evaluator(str(run), settings, use_cache=False, trust_remote_code=trust)
    say(f"[dim]tuned model, zero-shot: {test_task.name}[/dim]")
    results["tuned"] = tuned.run(test_task)
    tuned_suite = []
    for task in suite_tasks:
        say(f"[dim]tuned model, suite: {task.name}[/dim]")
        tuned_suite.append(tuned.run(task))
    tuned.release()

    headline = settings.metric
    baselines = [k for k in ("base_zero_shot", "base_k_shot") if k in results]
    best = max(baselines, key=lambda k: results[k].summary()[headline]["value"])  # ties: zero-shot
    gain = paired_difference(results["tuned"].values[headline], results[best].values[headline], seed=seed)
    forgetting = forgetting_table(base_suite, tuned_suite) if suite_tasks else None
    comparison = {
        "run": str(run),
        "base_model": base_name,
        "tuned_model": tuned.description,
        "test": {"path": str(test_file), "n": len(test_task.items), "metric": headline,
                 "shots": shots, "shots_from": str(train_file) if shots > 0 else None},
        "accuracy": {k: {**r.summary()[headline], **({"shots": shots} if k == "base_k_shot" else {})}
                     for k, r in results.items()},
        "metrics": {k: r.summary() for k, r in results.items()},
        "best_baseline": best,
        "gain_over_prompting": {**gain, "baseline": best},
        "forgetting": forgetting,
        "retention": forgetting["retention"] if forgetting else None,
        "settings": {"max_new_tokens": settings.max_new_tokens, "metric": headline, "extract": settings.extract,
                     "suite": [t.name for t in suite_tasks], "suite_max_examples": suite_max_examples,
                     "seed": seed},
        "seconds": round(time.perf_counter() - started, 1),
    }
    out = Path(output_dir) if output_dir else run / "compare"
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(json.dumps(comparison, indent=2, ensure_ascii=False), encoding="utf-8")
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as handle:
        rows = [(label, r) for label, r in results.items()]
        rows += [("base", r) for r in base_suite] + [("tuned", r) for r in tuned_suite]
        for label, r in rows:
            for row in r.predictions:
                handle.write(json.dumps({"model": label, "task": r.name, **row}, ensure_ascii=False) + "\n")
    comparison["output_dir"] = str(out)
    return comparison
