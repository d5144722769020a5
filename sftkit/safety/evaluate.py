"""`sftkit safety`: refusal rate on harmful requests, over-refusal rate on benign look-alikes, and BIG-bench
`hhh_alignment` multiple-choice accuracy, each with n and a 95% bootstrap interval; with `against`, the same
for the second model and the paired difference (model - against, paired bootstrap over the same prompts).

Replies are generated greedily with the model's chat template (`sftkit.generation`), in batches, at most
`max_new_tokens` each; HHH is scored with the eval package's multiple-choice scorer (`sftkit.eval.choice`).
A base model's replies and HHH scores are cached (keyed by model, prompts and generation settings), so
`--against default` costs nothing the second time. Refusals are classified afresh on every run, so a change
of classifier never needs the cache cleared.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from sftkit.errors import UserError
from sftkit.eval import cache
from sftkit.eval.metrics import paired_difference, summarize
from sftkit.paths import results_dir
from sftkit.safety.classifier import make_classifier
from sftkit.safety.settings import SafetySettings
from sftkit.safety.prompts import fingerprint, load_prompts

HHH_TASK = "bigbench:hhh_alignment"
METRICS = {"refusal_rate": "refusal rate on harmful requests (higher is safer)",
           "over_refusal_rate": "over-refusal rate on benign prompts (lower is better)",
           "hhh_accuracy": "HHH alignment accuracy (higher is better)"}
def _dtype(name: str):
    import torch

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in dtypes:
        raise UserError(f"unknown dtype {name!r}: use float32, bfloat16 or float16")
    return dtypes[name]


def evaluate_model(spec: str, prompts: list, hhh_task, settings: SafetySettings, use_cache: bool = True) -> dict:
    """Replies to `prompts` and per-item HHH correctness for one model (from the cache for base models)."""
    key = None
    fp = cache.model_fingerprint(spec) if use_cache else None
    if fp is not None:
        task_fp = fingerprint(prompts) + (hhh_task.fingerprint() if hhh_task else "no-hhh")
        key = cache.result_key(fp, task_fp, settings.result_settings())
        hit = cache.load(key)
        if hit is not None:
            return {**hit, "cached": True}
    from sftkit.generation import generate
    from sftkit.models import load_for_inference

    started = time.perf_counter()
    model, tokenizer, description = load_for_inference(spec, _dtype(settings.dtype))
    if hasattr(model, "merge_and_unload"):  # an adapter run: same function, faster generation
        model = model.merge_and_unload()
    replies = generate(model, tokenizer, [[{"role": "user", "content": p.prompt}] for p in prompts],
                       settings.max_new_tokens, batch_size=settings.batch_size)
    result = {"description": description, "replies": [r.text.strip() for r in replies], "hhh": None,
              "generation_seconds": round(time.perf_counter() - started, 1)}
    if hhh_task is not None:
        from sftkit.eval.choice import choice_predictions, score_items

        scoring_started = time.perf_counter()
        scores = score_items(model, tokenizer, hhh_task.items, settings.scoring_batch_size)
        values, rows = choice_predictions(hhh_task.items, scores)
        result["hhh"] = {"acc": values["acc"], "subtask": [Path(r["source"]).parent.name for r in rows],
                         "picks": [r["pick"] for r in rows]}
        result["hhh_seconds"] = round(time.perf_counter() - scoring_started, 1)
    result["seconds"] = round(time.perf_counter() - started, 1)
    if key is not None:
        cache.save(key, result)
    return {**result, "cached": False}


def _values(result: dict, labels: list[bool], harmful_count: int) -> dict[str, list[float]]:
    values = {"refusal_rate": [float(x) for x in labels[:harmful_count]],
              "over_refusal_rate": [float(x) for x in labels[harmful_count:]]}
    if result["hhh"] is not None:
        values["hhh_accuracy"] = result["hhh"]["acc"]
    return values


def _by_group(groups: list[str], values: list[float]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for group, value in zip(groups, values):
        entry = out.setdefault(group, {"count": 0, "n": 0})
        entry["count"] += int(value)
        entry["n"] += 1
    return {k: {**v, "rate": v["count"] / v["n"]} for k, v in out.items()}


def run_safety(model_or_run: str, against: str | None = None, *, output_dir: str | Path | None = None,
               settings: SafetySettings | None = None, judge: str | None = None, use_cache: bool = True,
               console=None) -> dict:
    """Evaluate `model_or_run` (and `against`): refusal, over-refusal and HHH with 95% CIs and paired deltas.

    Writes `safety.json` and `predictions.jsonl` (every reply with its refusal label, every HHH pick) to
    `output_dir` (default RUN/safety, or eval_results/NAME/safety) and returns the safety.json content;
    `headline` holds the three rates and, with `against`, their deltas.
    """
    settings = settings or SafetySettings()
    if settings.num_threads:
        import torch

        torch.set_num_threads(settings.num_threads)
    say = console.print if console is not None else (lambda *_: None)
    started = time.perf_counter()
    harmful = load_prompts("harmful", settings.max_prompts, settings.seed)
    benign = load_prompts("benign", settings.max_prompts, settings.seed)
    prompts = harmful + benign
    hhh_task = None
    if settings.hhh:
        from sftkit.eval.tasks import load_task

        hhh_task = load_task(HHH_TASK, settings.hhh_max_examples, settings.seed)
    specs = {"model": model_or_run, **({"against": against} if against else {})}
    raw = {}
    for label, spec in specs.items():
        say(f"[dim]{label}: {spec}: {len(prompts)} prompts"
            + (f", {len(hhh_task.items)} HHH questions" if hhh_task else "") + "[/dim]")
        raw[label] = evaluate_model(spec, prompts, hhh_task, settings, use_cache)
    classifier = make_classifier(judge)
    texts = [p.prompt for p in prompts]
    labels = {label: classifier(texts, r["replies"]) for label, r in raw.items()}
    values = {label: _values(raw[label], labels[label], len(harmful)) for label in raw}

    metrics = {}
    for name in METRICS:
        if name not in values["model"]:
            continue
        entry = {label: summarize(values[label][name], seed=settings.seed) for label in raw}
        if against:
            entry["delta"] = paired_difference(values["model"][name], values["against"][name], seed=settings.seed)
        metrics[name] = entry
    categories = [p.category for p in harmful]
    result = {
        "model": raw["model"]["description"], "against": raw["against"]["description"] if against else None,
        "metrics": metrics, "descriptions": METRICS,
        "refusal_by_category": {label: _by_group(categories, values[label]["refusal_rate"]) for label in raw},
        "over_refusal_by_category": {label: _by_group([p.category for p in benign], values[label]["over_refusal_rate"])
                                     for label in raw},
        "hhh_by_subtask": {label: _by_group(raw[label]["hhh"]["subtask"], values[label]["hhh_accuracy"])
                           for label in raw} if hhh_task else None,
        "classifier": classifier.name,
        "settings": {**asdict(settings), "num_harmful": len(harmful), "num_benign": len(benign),
                     "num_hhh": len(hhh_task.items) if hhh_task else 0},
        "cached": {label: r["cached"] for label, r in raw.items()},
        "model_seconds": {label: {k: r.get(k) for k in ("generation_seconds", "hhh_seconds", "seconds")}
                          for label, r in raw.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    result["headline"] = {name: m["model"]["value"] for name, m in metrics.items()}
    if against:
        result["headline"].update({f"{name}_delta": m["delta"]["abs"] for name, m in metrics.items()})
    out = Path(output_dir) if output_dir else results_dir(model_or_run, "safety")
    out.mkdir(parents=True, exist_ok=True)
    (out / "safety.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as handle:
        for label, r in raw.items():
            for index, (p, reply, refused) in enumerate(zip(prompts, r["replies"], labels[label])):
                kind = "harmful" if index < len(harmful) else "benign"
                handle.write(json.dumps({"model": label, "set": kind, "id": p.id,
                                         "category": p.category, "prompt": p.prompt, "reply": reply,
                                         "refused": refused}, ensure_ascii=False) + "\n")
            if r["hhh"] is not None:
                for item, pick, acc in zip(hhh_task.items, r["hhh"]["picks"], r["hhh"]["acc"]):
                    handle.write(json.dumps({"model": label, "set": "hhh_alignment", "source": item.source,
                                             "line": item.line, "pick": pick, "correct": acc}) + "\n")
    result["output_dir"] = str(out)
    return result


def safety_after_training(run_dir: Path, against: str, summary: dict, console=None) -> dict:
    """`eval.safety` at the end of a recipe: evaluate the run against `against`, print the tables (with a
    console) and add the headline rates and the output directory to the run's summary.json."""
    from sftkit.safety.report import print_safety
    from sftkit.training.run_dir import write_json

    result = run_safety(str(run_dir), against=against, console=console)
    summary["safety"] = {**result["headline"], "output_dir": result["output_dir"]}
    write_json(Path(run_dir) / "summary.json", summary)
    if console is not None:
        print_safety(result, console)
    return summary
