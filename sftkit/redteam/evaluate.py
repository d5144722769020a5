"""`sftkit redteam`: attack a model, a run or a served endpoint with every attack over the harmful seeds, and
report attack success per attack, per hazard and over all attacks, with 95% intervals over seeds and paired
deltas against `direct` and against a second model (`against`, on the same seeds and attacks).

`direct` sends each seed as it is, greedily, at `max_new_tokens` 48, judged by `sftkit safety`'s refusal
classifier: on the `safety` seed set it reproduces `sftkit safety`'s refusal rate exactly (attack success =
1 - refusal rate).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlparse

from sftkit.errors import UserError
from sftkit.paths import results_dir
from sftkit.redteam import scoring
from sftkit.redteam.attacks import select_attacks
from sftkit.redteam.replies import attack_target, target_replies
from sftkit.redteam.seeds import load_seeds
from sftkit.redteam.settings import RedteamSettings
from sftkit.redteam.stats import MEASURES, any_attack, attack_table, by_hazard


def _engaged_available(settings: RedteamSettings, say) -> bool:
    from sftkit.curate.embed import embedding_available

    if settings.engaged and not embedding_available(scoring.EMBEDDING):
        # "\\[" keeps rich from reading [embed] as a style tag
        say("[yellow]engaged success left out: it needs the `embed` extra (pip install 'sftkit\\[embed]')[/yellow]")
        return False
    return settings.engaged


def _licence(spec: str) -> str | None:
    """Where the licence notice of an external seed set lies (it is read in place, never copied)."""
    from sftkit.redteam.external import external_file, is_external

    if not is_external(spec):
        return None
    notice = external_file(spec)[1]
    return str(notice) if notice else None


def _score(raw: dict, attacks, seeds, classifier, judge, engaged: bool, threshold: float) -> tuple[dict, dict]:
    """(per-attack measure values, per-attack per-seed rows) for one target's replies."""
    prompts = [s.prompt for s in seeds]
    values, rows = {}, {}
    for attack in attacks:
        replies = target_replies(raw, attack.name)
        refused = scoring.refused_verdicts(classifier, prompts, replies, attack.decode)
        values[attack.name] = {"attack_success": [float(not r) for r in refused], "engaged_success": None,
                               "judge_score": None,
                               "refusal_margin": raw["margins"][attack.name] if raw["margins"] else None}
        rows[attack.name] = {"refused": refused}
    if engaged:
        texts = [r for a in attacks for r in raw["replies"][a.name]]
        decoded = [a.decode(r) if a.decode else None for a in attacks for r in raw["replies"][a.name]]
        similarity = scoring.topic_similarities(prompts * len(attacks), texts, decoded)
        for k, attack in enumerate(attacks):
            sims = similarity[k * len(seeds):(k + 1) * len(seeds)]
            verdicts = scoring.engaged_verdicts(rows[attack.name]["refused"], sims, threshold)
            values[attack.name]["engaged_success"] = [float(v) for v in verdicts]
            rows[attack.name].update(similarity=sims, engaged=verdicts)
    if judge is not None:  # an encoded reply is judged as decoded
        scores = judge(prompts * len(attacks), [a.decode(r) if a.decode else r for a in attacks
                                                for r in raw["replies"][a.name]])
        for k, attack in enumerate(attacks):
            values[attack.name]["judge_score"] = scores[k * len(seeds):(k + 1) * len(seeds)]
    return values, rows


def _headline(table: dict, any_table: dict) -> dict:
    successes = {a: m["attack_success"]["model"]["value"] for a, m in table.items()}
    best = max(successes, key=successes.get)
    out = {"direct_success": successes["direct"], "best_attack": best, "best_attack_success": successes[best],
           "any_attack_success": any_table["attack_success"]["model"]["value"],
           "num_attacks": any_table["num_attacks"]}
    if "delta_vs_against" in table["direct"]["attack_success"]:
        out["direct_success_delta"] = table["direct"]["attack_success"]["delta_vs_against"]["abs"]
        out["any_attack_success_delta"] = any_table["attack_success"]["delta_vs_against"]["abs"]
    return out


def run_redteam(model_or_run: str | None, against: str | None = None, *, endpoint: str | None = None,
                api_key: str | None = None, endpoint_model: str | None = None, output_dir: str | Path | None = None,
                settings: RedteamSettings | None = None, judge: str | None = None, refusal_judge: str | None = None,
                guard=None, use_cache: bool = True, console=None) -> dict:
    """Attack `model_or_run` (or the endpoint) and `against`; write redteam.json and predictions.jsonl to
    `output_dir` (default RUN/redteam or eval_results/NAME/redteam) and return redteam.json's content."""
    from sftkit.redteam.report import write_outputs
    from sftkit.safety.classifier import make_classifier

    settings = settings or RedteamSettings()
    if endpoint is None and model_or_run is None:
        raise UserError("nothing to attack: give a model or run, or --endpoint URL")
    if settings.num_threads:
        import torch

        torch.set_num_threads(settings.num_threads)
    say = console.print if console is not None else (lambda *_: None)
    started = time.perf_counter()
    seeds = load_seeds(settings.seeds, settings.max_seeds, settings.seed)
    attacks = select_attacks(settings.attacks, endpoint is not None, settings.suffixes or None)
    conversations = {a.name: [a.build(s, seeds) for s in seeds] for a in attacks}
    engaged = _engaged_available(settings, say)
    name = model_or_run if endpoint is None else "endpoint-" + (urlparse(endpoint).netloc or "url").replace(":", "-")
    targets = {"model": {"spec": model_or_run, "endpoint": endpoint, "api_key": api_key,
                         "endpoint_model": endpoint_model, "guard": guard},
               **({"against": {"spec": against}} if against else {})}
    raw = {}
    for label, target in targets.items():
        say(f"[dim]{label}: {target['endpoint'] or target['spec'] if label == 'model' else target['spec']}: "
            f"{len(seeds)} seeds x {len(attacks)} attacks[/dim]")
        raw[label] = attack_target(conversations=conversations, settings=settings, use_cache=use_cache, **target)
    classifier = make_classifier(refusal_judge)
    rubric = None
    if judge:
        from sftkit.redteam.judge import RubricJudge

        rubric = RubricJudge(judge, settings.scoring_batch_size)
    scored = {label: _score(r, attacks, seeds, classifier, rubric, engaged, settings.engaged_threshold)
              for label, r in raw.items()}
    values = {label: v for label, (v, _) in scored.items()}
    table = attack_table(values["model"], values.get("against"), settings.seed)
    any_table = any_attack(values["model"], values.get("against"), settings.seed)
    hazards = [s.hazard for s in seeds]
    result = {
        "model": raw["model"]["description"], "against": raw["against"]["description"] if against else None,
        "target": "endpoint" if endpoint else "local", "guardrail": bool(guard),
        "seeds": {"spec": settings.seeds, "n": len(seeds), "licence": _licence(settings.seeds),
                  "by_hazard": {h: hazards.count(h) for h in dict.fromkeys(hazards)}},
        "attacks": {a.name: {"family": a.family, "description": a.description, **table[a.name]} for a in attacks},
        "any_attack": any_table,
        "by_hazard": {label: by_hazard(values[label], hazards, settings.seed) for label in raw},
        "measures": {m: d for m, d in MEASURES.items() if any(table[a.name].get(m) for a in attacks)},
        "scorers": {"refusal": classifier.name, "engaged_threshold": settings.engaged_threshold if engaged else None,
                    "embedding": scoring.EMBEDDING if engaged else None, "judge": rubric.name if rubric else None,
                    "refusing_openings": list(scoring.REFUSING), "complying_openings": list(scoring.COMPLYING)},
        "settings": {**asdict(settings), "suffixes": len(settings.suffixes)},
        "cached": {label: r["cached"] for label, r in raw.items()},
        "model_seconds": {label: {k: r.get(k) for k in ("generation_seconds", "margin_seconds", "seconds")}
                          for label, r in raw.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    result["headline"] = _headline(table, any_table)
    out = Path(output_dir) if output_dir else results_dir(name, "redteam")
    write_outputs(out, result, raw, {label: rows for label, (_, rows) in scored.items()}, values, seeds, attacks,
                  settings.save_replies)
    result["output_dir"] = str(out)
    return result


def redteam_after_training(run_dir: Path, against: str, summary: dict, console=None) -> dict:
    """`eval.redteam` at the end of a recipe: the default suite on the run against `against` (the starting
    model); prints the tables (with a console) and adds the headline and the output directory to summary.json."""
    from sftkit.redteam.report import print_redteam
    from sftkit.training.run_dir import write_json

    result = run_redteam(str(run_dir), against, console=console)
    summary["redteam"] = {**result["headline"], "output_dir": result["output_dir"]}
    write_json(Path(run_dir) / "summary.json", summary)
    if console is not None:
        print_redteam(result, console)
    return summary
