"""The verdict: one sentence per claim, each with its n and 95% interval.

A fine-tune "beats" prompting only when the whole interval of its paired gain is above 0; a task "dropped"
only when the interval of its change is on the worse side of 0; otherwise the sentence says the interval
includes 0. Nothing is claimed that the run did not measure: a missing evaluation is named with the command
that measures it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sftkit.report.figures import (baseline_label, direction, interval, megabytes, num, ratio, seconds, signed,
                                   task_label, value_of)

GOOD, BAD, NEUTRAL = "good", "bad", "neutral"
# safety measure -> (words, +1 when a rise is better, -1 when a fall is better)
SAFETY = {"refusal_rate": ("refusal rate on harmful requests", 1),
          "over_refusal_rate": ("over-refusal rate on benign requests", -1),
          "hhh_accuracy": ("HHH alignment accuracy", 1)}


@dataclass
class Claim:
    topic: str
    text: str
    tone: str


def loss_claim(run) -> Claim | None:
    s = run.summary
    if s.get("best_val_loss") is None or s.get("initial_val_loss") is None:
        return None
    n = s.get("num_val_examples", s.get("num_val_pairs"))
    stop = f"; stopped early at step {s['stopped_step']}" if s.get("early_stopped") else ""
    text = (f"Validation loss went from {s['initial_val_loss']:.4f} to {s['best_val_loss']:.4f} (n = {n} validation "
            f"examples); the best weights, from step {s['best_step']} of {s['steps']}, are the ones written{stop}.")
    return Claim("loss", text, GOOD if s["best_val_loss"] < s["initial_val_loss"] else BAD)


def gain_claim(comparison: dict) -> Claim:
    test, gain = comparison["test"], comparison["gain_over_prompting"]
    acc, best = comparison["accuracy"], comparison["best_baseline"]
    base = baseline_label(best, test.get("shots"))
    figures = (f"{test['metric']} {acc['tuned']['value']:.3f} fine-tuned vs {acc[best]['value']:.3f} for the "
               f"{base} (the better prompting baseline) on n = {test['n']} held-out examples: a gain of "
               f"{signed(gain['abs'])} (95% CI {interval(gain, sign=True)}, paired)")
    way = direction(gain)
    if way > 0:
        return Claim("gain", f"Fine-tuning beats prompting: {figures}.", GOOD)
    if way < 0:
        return Claim("gain", f"Prompting beats this fine-tune: {figures}.", BAD)
    return Claim("gain", f"No clear winner between fine-tuning and prompting: {figures}; the interval includes 0, "
                         "so more test examples (data.test_fraction) are needed to tell.", NEUTRAL)


def retention_claim(comparison: dict) -> Claim | None:
    forgetting = comparison.get("forgetting")
    if not forgetting:
        return None
    tasks = forgetting["tasks"]
    sizes = sorted({row["base"]["n"] for row in tasks.values()})
    n = f"n = {sizes[0]} each" if len(sizes) == 1 else f"n = {sizes[0]} to {sizes[-1]}"
    average = f"average retention {num(forgetting['retention'])} (tuned / base)"
    if forgetting["flagged"]:
        names = ", ".join(task_label(t) for t in forgetting["flagged"])
        return Claim("retention", f"{len(forgetting['flagged'])} of {len(tasks)} general tasks dropped (95% interval "
                                  f"of the change entirely worse than 0, {n}): {names}; {average}.", BAD)
    return Claim("retention", f"No general task dropped significantly ({len(tasks)} suite tasks, {n}); {average}.",
                 GOOD)


def safety_claims(safety: dict) -> list[Claim]:
    out = []
    for name, entry in safety.get("metrics", {}).items():
        words, better = SAFETY.get(name, (name, 1))
        model = entry["model"]
        if "delta" not in entry:
            out.append(Claim("safety", f"The {words} is {model['value']:.3f} (95% CI {interval(model)}, n = "
                                       f"{model['n']}); not compared with the base model (`sftkit safety RUN "
                                       "--against BASE`).", NEUTRAL))
            continue
        delta, before = entry["delta"], entry["against"]
        way = direction(delta) * better
        change = ("no significant change" if way == 0 else "a significant improvement" if way > 0
                  else "a significant worsening")
        out.append(Claim("safety", f"The {words} went from {before['value']:.3f} to {model['value']:.3f} (delta "
                                   f"{signed(delta['abs'])}, 95% CI {interval(delta, sign=True)}, n = {delta['n']}, "
                                   f"paired): {change}.", NEUTRAL if way == 0 else GOOD if way > 0 else BAD))
    return out


def redteam_claims(redteam: dict) -> list[Claim]:
    """Attack success rises against the model compared with (`delta*` estimates whose interval is above 0)."""
    from sftkit.report.safety import attack_rows

    rows = attack_rows(redteam)
    if not rows:
        return []
    worst = max(rows, key=lambda r: value_of(r.rate) or 0)
    rate = worst.rate_name.replace("_", " ")
    text = (f"Red-team: of {len(rows)} attacks the most successful is {worst.attack}, with a {rate} "
            f"of {num(value_of(worst.rate))} (95% CI {interval(worst.rate)}, n = {worst.rate.get('n')}).")
    risen = [r for r in rows if r.delta is not None and direction(r.delta) > 0]
    if risen:
        names = ", ".join(f"{r.attack} ({signed(r.delta['abs'] if 'abs' in r.delta else r.delta['value'])})"
                          for r in risen)
        return [Claim("redteam", text + f" Significantly more successful than against the base model: {names}.", BAD)]
    compared = any(r.delta is not None for r in rows)
    tail = " No attack is significantly more successful than against the base model." if compared else ""
    return [Claim("redteam", text + tail, NEUTRAL)]


def cost_claim(summary: dict) -> Claim | None:
    if summary.get("train_seconds") is None:
        return None
    est = summary.get("estimate") or {}
    time = f"Training took {seconds(summary['train_seconds'])} ({seconds(summary.get('wall_seconds'))} in all)"
    if est.get("seconds"):
        time += f", {ratio(summary['train_seconds'], est['seconds'])} of {seconds(est['seconds'])}"
    memory = f"peak memory {megabytes(summary.get('peak_memory_mb'))}"
    if est.get("memory_mb"):
        memory += f", {ratio(summary.get('peak_memory_mb'), est['memory_mb'])} of {megabytes(est['memory_mb'])}"
    return Claim("cost", f"{time}; {memory}.", NEUTRAL)


def claims(run) -> list[Claim]:
    """Every claim the run's measurements support, in the order of the page's sections."""
    out = [c for c in [loss_claim(run)] if c]
    if run.comparison:
        out.append(gain_claim(run.comparison))
        out += [c for c in [retention_claim(run.comparison)] if c]
    elif run.kind == "sft":
        out.append(Claim("gain", "Fine-tune or prompt was not measured: run `sftkit compare RUN` (or train with "
                                 "eval.after_training: true).", NEUTRAL))
    if run.safety:
        out += safety_claims(run.safety)
    if run.redteam:
        out += redteam_claims(run.redteam)
    out += [c for c in [cost_claim(run.summary)] if c]
    return out
