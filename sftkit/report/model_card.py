"""Model cards (README.md) for a run's adapter/, merged/ and exports, written with huggingface_hub's
`ModelCard`: `base_model`, a `model-index` of the measured results, a headline table with n and intervals,
how the model was trained, its intended use, the measured safety figures, and the config collapsed.

    write_model_card(model_dir, run_dir=None, export=None) -> Path   # one directory (export/FORMAT/ included)
    write_model_cards(run_dir) -> list[Path]                         # every model directory of a run
"""

from __future__ import annotations

from pathlib import Path

from sftkit.report.collect import RunData, collect_run, read_json
from sftkit.report.figures import baseline_label, estimate_text, num, task_label
from sftkit.report.verdict import claims

CARD_NAME = "README.md"
SAFETY_TYPES = {"refusal_rate": "refusal rate on harmful requests", "over_refusal_rate": "over-refusal rate on "
                "benign requests", "hhh_accuracy": "HHH alignment accuracy"}


def hub_base_model(run: RunData) -> str | None:
    """The base model's hub id when it has one (the default model, a local copy that records its id, a hub id)."""
    from sftkit.models import DEFAULT_MODEL, DEFAULT_MODEL_ID

    name = run.summary.get("base_model") or (run.config.get("model") or {}).get("name")
    if not name or name == DEFAULT_MODEL:
        return DEFAULT_MODEL_ID
    path = Path(name)
    source = read_json(path / "sftkit_source.json") if path.is_dir() else None
    if source:
        return source.get("hub_id")
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1:
        return None
    return name


def eval_results(run: RunData, model_name: str) -> list:
    """model-index entries: the tuned model on the held-out test split, each suite task, the safety measures."""
    from huggingface_hub import EvalResult

    out = []
    c = run.comparison
    if c:
        data = (run.config.get("data") or {}).get("train_path") or "training data"
        out.append(EvalResult(task_type="text-generation", task_name="held-out test split", dataset_type="sftkit-split",
                              dataset_name=f"{data} (held-out test split, n={c['test']['n']})", dataset_split="test",
                              metric_type=c["test"]["metric"], metric_value=round(c["accuracy"]["tuned"]["value"], 4),
                              metric_name=f"{c['test']['metric']} (zero-shot)"))
        for name, row in ((c.get("forgetting") or {}).get("tasks") or {}).items():
            # dataset_config keeps the tasks apart: the hub groups results by task type and dataset
            out.append(EvalResult(task_type="text-generation", task_name=task_label(name),
                                  dataset_type="bigbench" if name.startswith(("bigbench:", "perplexity:fables"))
                                  else "sftkit-suite", dataset_name=f"{name} (n={row['tuned']['n']})",
                                  dataset_config=task_label(name), metric_type=row["metric"],
                                  metric_value=round(row["tuned"]["value"], 4)))
    for name, entry in ((run.safety or {}).get("metrics") or {}).items():
        out.append(EvalResult(task_type="text-generation", task_name="safety", dataset_type="sftkit-safety",
                              dataset_name=f"sftkit safety prompts (n={entry['model']['n']})", metric_type=name,
                              metric_value=round(entry["model"]["value"], 4), metric_name=SAFETY_TYPES.get(name)))
    return out


def headline_table(run: RunData) -> str:
    rows = ["| measure | value [95% CI] n |", "|---|---|"]
    c = run.comparison
    if c:
        for key, est in c["accuracy"].items():
            rows.append(f"| {c['test']['metric']}, {baseline_label(key, c['test'].get('shots'))} | "
                        f"{estimate_text(est)} |")
        rows.append(f"| gain over the best prompting baseline (paired) | "
                    f"{estimate_text(c['gain_over_prompting'], sign=True)} |")
        if c.get("retention") is not None:
            flagged = len(c["forgetting"]["flagged"])
            rows.append(f"| general-suite retention, tuned / base ({len(c['forgetting']['tasks'])} tasks, "
                        f"{flagged} dropped) | {num(c['retention'])} |")
    for name, entry in ((run.safety or {}).get("metrics") or {}).items():
        before = f" (base: {estimate_text(entry['against'])})" if "against" in entry else ""
        rows.append(f"| {SAFETY_TYPES.get(name, name)} | {estimate_text(entry['model'])}{before} |")
    s = run.summary
    if s.get("best_val_loss") is not None:
        rows.append(f"| validation loss, before -> best | {s['initial_val_loss']:.4f} -> {s['best_val_loss']:.4f} "
                    f"(n={s.get('num_val_examples', s.get('num_val_pairs'))}) |")
    return "\n".join(rows) if len(rows) > 2 else "No evaluation was run on this model."


def training_text(run: RunData) -> str:
    s, c = run.summary, run.config
    t, d = c.get("train") or {}, c.get("data") or {}
    lora = c.get("lora") or {}
    method = (f"LoRA (r={lora.get('r')}, alpha={lora.get('alpha')}, targets {lora.get('target_modules')})"
              if s.get("method", t.get("method")) == "lora" else "full fine-tuning")
    lines = [f"- recipe: sftkit {run.kind}, {method}",
             (f"- data: `{d.get('train_path')}`: {s.get('num_train_examples', s.get('num_train_pairs'))} training "
             f"examples, {s.get('trained_tokens', 0):,} trained tokens, max_length {d.get('max_length')}"),
             (f"- optimisation: {s.get('steps')} steps, learning rate {t.get('learning_rate')} "
             f"({t.get('lr_scheduler')}, warmup {t.get('warmup_ratio')}), micro-batch {t.get('micro_batch_size')} "
             f"x accumulation {t.get('grad_accum_steps')}, precision {t.get('precision')}, seed {t.get('seed')}"),
             f"- weights: the best validation step ({s.get('best_step')})"
             + (f"; stopped early at step {s.get('stopped_step')}" if s.get("early_stopped") else ""),
             f"- cost: {s.get('train_seconds', 0):.0f} s of training, peak memory {s.get('peak_memory_mb', 0):,.0f} MB",
             (f"- software: sftkit {run.versions.get('sftkit')}, torch {run.versions.get('torch')}, transformers "
             f"{run.versions.get('transformers')}, peft {run.versions.get('peft')}")]
    return "\n".join(lines)


def usage_text(kind: str, base: str | None) -> str:
    if kind == "adapter":
        return ("```python\nfrom peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n\n"
                "model = AutoPeftModelForCausalLM.from_pretrained(\"PATH/TO/adapter\")\n"
                "tokenizer = AutoTokenizer.from_pretrained(\"PATH/TO/adapter\")\n```\n"
                f"The adapter applies to `{base or 'the base model'}`; `sftkit generate PATH/TO/RUN` uses it too.")
    if kind == "merged":
        return ("```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                "model = AutoModelForCausalLM.from_pretrained(\"PATH/TO/merged\")\n"
                "tokenizer = AutoTokenizer.from_pretrained(\"PATH/TO/merged\")\n```")
    return ("See export_report.json in this directory for the files written, their checks and the commands to "
            "serve them.")


def card_text(run: RunData, model_dir: Path, kind: str, export: dict | None) -> str:
    from huggingface_hub import ModelCardData

    base = hub_base_model(run)
    method = run.summary.get("method") or (run.config.get("train") or {}).get("method")
    data = ModelCardData(
        base_model=base, library_name={"adapter": "peft", "merged": "transformers"}.get(kind, None),
        license="apache-2.0" if base == "HuggingFaceTB/SmolLM2-135M-Instruct" else None,
        pipeline_tag="text-generation",
        tags=[t for t in ("sftkit", run.kind, method, f"export-{kind}" if export else None) if t],
        model_name=run.name, eval_results=eval_results(run, run.name) or None)
    train_path = (run.config.get("data") or {}).get("train_path")
    verdict = "\n".join(f"- {c.text}" for c in claims(run))
    safety = ("\n".join(f"- {c.text}" for c in claims(run) if c.topic in ("safety", "redteam"))
              or "Not measured. Run `sftkit safety RUN --against BASE` before deploying this model; "
                 "fine-tuning on benign data can lower refusal rates.")
    what = {"adapter": "A LoRA adapter for", "merged": "The merged weights of"}.get(kind, f"An export ({kind}) of")
    how = "LoRA" if method == "lora" else "full fine-tuning"
    config = (run.config_text or "").rstrip()
    sections = [
        f"# {run.name}",
        (f"{what} `{base or run.summary.get('base_model')}` fine-tuned ({how}) on `{train_path}`, trained and "
        "evaluated with sftkit. Every figure below was measured on held-out data, with its 95% bootstrap interval "
        "and n."),
        "## Results\n\n" + headline_table(run) + "\n\n" + verdict,
        "## How it was trained\n\n" + training_text(run),
        (f"## Intended use\n\nThe task of its training data (`{train_path}`): prompts like those in the training "
        "split, answered in their format. It was evaluated only on the measures above: outside that task, rely on "
        "the forgetting figures (how far general ability moved) and run your own evaluation first."),
        "## Safety\n\n" + safety,
        "## How to use\n\n" + usage_text(kind, base),
        f"## Config\n\n<details>\n<summary>config.yaml</summary>\n\n```yaml\n{config}\n```\n\n</details>",
    ]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n"


def _model_kind(model_dir: Path, run_dir: Path) -> str:
    if model_dir.parent.resolve() == run_dir.resolve():
        return model_dir.name
    return model_dir.name if model_dir.parent.name == "export" else "export"


def _find_run(model_dir: Path) -> Path:
    for candidate in (model_dir.parent, *model_dir.parents[1:3]):
        if (candidate / "summary.json").is_file():
            return candidate
    from sftkit.errors import UserError

    raise UserError(f"{model_dir} is not inside a run directory (no summary.json above it): pass run_dir")


def write_model_card(model_dir: str | Path, run_dir: str | Path | None = None, *, export: dict | None = None,
                     run: RunData | None = None) -> Path:
    """Write MODEL_DIR/README.md for a model directory of a run (adapter/, merged/ or export/FORMAT/).

    run_dir: the run it came from (default: the nearest parent with a summary.json; MODEL_DIR may be a staging
    directory such as RUN/export/.gguf.partial-PID). export: the export's report (default:
    MODEL_DIR/export_report.json when present); its "format" names the card's kind. Returns the card's path.
    A stable entry point: `sftkit export` calls it.
    """
    from huggingface_hub import ModelCard

    model_dir = Path(model_dir)
    run_dir = Path(run_dir) if run_dir else _find_run(model_dir)
    run = run or collect_run(run_dir, with_tokens=False)
    export = export if export is not None else read_json(model_dir / "export_report.json")
    # the export's own format names it: the export step writes its card into a staging directory before renaming
    kind = (export or {}).get("format") or _model_kind(model_dir, run_dir)
    card = ModelCard(card_text(run, model_dir, kind, export))
    path = model_dir / CARD_NAME
    card.save(path)
    return path


def write_model_cards(run_dir: str | Path) -> list[Path]:
    """Cards in every model directory of the run: adapter/, merged/ and each export/FORMAT/."""
    run_dir = Path(run_dir)
    run = collect_run(run_dir, with_tokens=False)
    dirs = [run_dir / name for name in ("adapter", "merged") if (run_dir / name).is_dir()]
    dirs += sorted(p.parent for p in (run_dir / "export").glob("*/export_report.json"))
    return [write_model_card(d, run_dir, run=run) for d in dirs]
