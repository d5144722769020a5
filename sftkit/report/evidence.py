"""The sections that answer "was it worth it": fine-tune or prompt (base zero-shot, base k-shot and tuned with
intervals, the paired gain), forgetting per suite task, and held-out examples the fine-tune fixed or broke."""

from __future__ import annotations

from sftkit.report.charts import MUTED, PALETTE, Interval, interval_chart
from sftkit.report.figures import (baseline_label, estimate_text, interval, num, signed, task_label)
from sftkit.report.html import Html, join, note, section, table, tag

MAX_EXAMPLES_SHOWN = 6


def prompting_section(run) -> Html:
    c = run.comparison
    if not c:
        return section("prompting", "Fine-tune or prompt?", note(
            "Not measured: run `sftkit compare RUN`, or train with eval.after_training: true (needs a test split: "
            "data.test_fraction > 0 or data.test_path)."))
    test, acc, gain = c["test"], c["accuracy"], c["gain_over_prompting"]
    rows = [Interval(baseline_label(k, test.get("shots")) + (" (best prompting)" if k == c["best_baseline"] else ""),
                     v["value"], v["ci_low"], v["ci_high"], estimate_text(v), PALETTE[1] if k == "tuned" else MUTED)
            for k, v in acc.items()]
    accuracy = interval_chart(f"{test['metric']} on {test['n']} held-out test examples, 95% intervals", rows,
                              domain=(0.0, 1.0))
    best = baseline_label(c["best_baseline"], test.get("shots"))
    gain_chart = interval_chart(f"gain of the fine-tune over the {best} (paired, 95% interval)", [
        Interval("tuned - best prompting", gain["abs"], gain["ci_low"], gain["ci_high"],
                 estimate_text(gain, sign=True), PALETTE[2] if gain["ci_low"] > 0 else PALETTE[4])], zero_line=True)
    relative = (f" ({gain['rel']:+.1%} relative, 95% CI [{gain['rel_ci_low']:+.1%}, {gain['rel_ci_high']:+.1%}])"
                if gain.get("rel") is not None and gain.get("rel_ci_low") is not None else "")
    return section("prompting", "Fine-tune or prompt?",
                   tag("p", f"The same {test['n']} test examples (never used for training or early stopping) "
                            f"answered by the base model without examples, the base model with {test.get('shots')} "
                            f"examples from the training split in the prompt, and the fine-tuned model. Gain "
                            f"{signed(gain['abs'])}{relative}, paired bootstrap over the test examples."),
                   accuracy, gain_chart)


def forgetting_section(run) -> Html:
    c = run.comparison
    forgetting = (c or {}).get("forgetting")
    if not forgetting:
        return section("forgetting", "Forgetting", note(
            "Not measured: `sftkit compare RUN` runs the general-capability suite for the base and tuned models."))
    accuracy_rows, perplexity_rows, intervals, classes = [], [], [], []
    for name, row in forgetting["tasks"].items():
        label = task_label(name)
        if row["metric"] == "perplexity":
            perplexity_rows.append([label, num(row["base"]["value"], 2), num(row["tuned"]["value"], 2),
                                    signed(row["delta"], 2), (f"[{signed(row['delta_log_ci_low'])}, "
                                    f"{signed(row['delta_log_ci_high'])}]"), num(row["retention"]),
                                    row["base"]["n"], "worse" if row["flagged"] else ""])
            continue
        delta = {"abs": row["delta"], "ci_low": row["delta_ci_low"], "ci_high": row["delta_ci_high"],
                 "n": row["base"]["n"]}
        accuracy_rows.append([label, row["metric"], num(row["base"]["value"]), num(row["tuned"]["value"]),
                              signed(row["delta"]), interval(delta, sign=True), num(row["retention"]),
                              row["base"]["n"], "DROP" if row["flagged"] else ""])
        classes.append("flagged" if row["flagged"] else None)
        intervals.append(Interval(label, row["delta"], row["delta_ci_low"], row["delta_ci_high"],
                                  estimate_text(delta, sign=True), PALETTE[4] if row["flagged"] else PALETTE[0]))
    parts = [tag("p", f"Average retention {num(forgetting['retention'])} (tuned / base over the tasks with a "
                      f"non-zero base score). A task is flagged when the 95% interval of its change lies entirely "
                      f"on the worse side of 0.")]
    if accuracy_rows:
        parts.append(table(["task", "metric", "base", "tuned", "delta", "95% CI", "retention", "n", ""],
                           accuracy_rows, row_classes=classes, numeric={2, 3, 4, 5, 6, 7}))
        parts.append(interval_chart("change per task, tuned - base (paired, 95% intervals)", intervals, zero_line=True))
    if perplexity_rows:
        parts.append(tag("h3", "perplexity (lower is better)"))
        parts.append(table(["text", "base", "tuned", "delta", "95% CI of the log-perplexity change", "retention",
                            "n", ""], perplexity_rows, numeric={1, 2, 3, 4, 5, 6}))
    return section("forgetting", "Forgetting", join(parts))


def _changed(run) -> tuple[list[list], list[list]]:
    """(fixed, broken): test examples the best baseline got wrong and the fine-tune right, and the reverse."""
    c = run.comparison
    metric, best = c["test"]["metric"], c["best_baseline"]
    base_rows = {(r["source"], r["line"]): r for r in run.test_predictions.get(best, [])}
    fixed, broken = [], []
    for tuned in run.test_predictions.get("tuned", []):
        key = (tuned["source"], tuned["line"])
        base = base_rows.get(key)
        if base is None or metric not in tuned:
            continue
        question = run.test_questions.get(key) or tuned.get("prompt", "")
        row = [question, base.get("output", ""), tuned.get("output", ""), tuned.get("reference", "")]
        if tuned[metric] > base[metric]:
            fixed.append(row)
        elif tuned[metric] < base[metric]:
            broken.append(row)
    return fixed, broken


def examples_section(run) -> Html:
    if not run.comparison or not run.test_predictions:
        return section("examples", "Examples", note("No predictions: `sftkit compare RUN` writes them."))
    fixed, broken = _changed(run)
    best = baseline_label(run.comparison["best_baseline"], run.comparison["test"].get("shots"))
    headers = ["prompt (last user turn)", best, "fine-tuned", "reference"]
    parts = [tag("p", f"Of {len(run.test_predictions.get('tuned', []))} test examples the fine-tune fixed "
                      f"{len(fixed)} and broke {len(broken)} compared with the {best}; the first "
                      f"{MAX_EXAMPLES_SHOWN} of each (all in compare/predictions.jsonl).")]
    for title, rows in (("fixed by fine-tuning", fixed), ("broken by fine-tuning", broken)):
        parts.append(tag("h3", f"{title} ({len(rows)})"))
        parts.append(table(headers, rows[:MAX_EXAMPLES_SHOWN], class_="examples") if rows else note("none"))
    return section("examples", "Examples", join(parts))
