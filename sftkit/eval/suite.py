"""The general-capability (forgetting) suite and the base-vs-tuned forgetting table.

The default suite is seven BIG-bench multiple-choice tasks, each a seeded subsample, plus perplexity on
BIG-bench's `understanding_fables` stories (189 short fables, question removed): real English prose that
ships inside the same `bigbench` sdist, so it works offline. A suite is a list of task specs; the entry
`default` stands for the default suite, so `[default, my_task.jsonl]` extends it and `[my_task.jsonl]`
replaces it.
"""

from __future__ import annotations

from sftkit.eval.metrics import paired_difference, paired_log_perplexity_difference
from sftkit.eval.settings import DEFAULT_SUITE_MAX_EXAMPLES
from sftkit.eval.tasks import Task, load_task

DEFAULT_SUITE = (
    "bigbench:general_knowledge",
    "bigbench:strategyqa",
    "bigbench:winowhy",
    "bigbench:date_understanding",
    "bigbench:known_unknowns",
    "bigbench:misconceptions",
    "bigbench:emoji_movie",
    "perplexity:fables",
)
# `bigbench:timedial` is left out: its prompts are about five times longer than the others' (a third of the
# suite's time at DEFAULT_MAX_EXAMPLES).
DEFAULT_MAX_EXAMPLES = DEFAULT_SUITE_MAX_EXAMPLES
SUITE_SEED = 1234


def expand_suite(specs: list[str] | None) -> list[str]:
    """Task specs of a suite: None means the default; the entry `default` expands in place."""
    out: list[str] = []
    for spec in specs if specs else ["default"]:
        for item in DEFAULT_SUITE if spec == "default" else [spec]:
            if item not in out:
                out.append(item)
    return out


def load_suite(specs: list[str] | None = None, max_examples: int | None = DEFAULT_MAX_EXAMPLES,
               seed: int = SUITE_SEED) -> list[Task]:
    """Load every suite task (fetching BIG-bench tasks once), each subsampled to `max_examples`."""
    return [load_task(spec, max_examples, seed) for spec in expand_suite(specs)]


def forgetting_table(base_results: list, tuned_results: list) -> dict:
    """Per-task base vs tuned headline metric, delta with a paired 95% CI, retention, and flagged drops.

    Retention is tuned / base for accuracy-type metrics and base / tuned for perplexity (so > 1 is better
    for both). A drop is flagged when its whole interval lies on the worse side of zero. The average
    retention is over the tasks with a non-zero base score.
    """
    tasks, retentions, flagged = {}, [], []
    for base, tuned in zip(base_results, tuned_results):
        metric = base.headline
        b, t = base.summary()[metric], tuned.summary()[metric]
        if base.kind == "perplexity":
            diff = paired_log_perplexity_difference((tuned.values["nll"], tuned.values["num_tokens"]),
                                                    (base.values["nll"], base.values["num_tokens"]))
            worse = diff["ci_low"] > 0
            retention = b["value"] / t["value"]
            delta = {"delta": t["value"] - b["value"], "delta_log": diff["abs"],
                     "delta_log_ci_low": diff["ci_low"], "delta_log_ci_high": diff["ci_high"]}
        else:
            diff = paired_difference(tuned.values[metric], base.values[metric])
            worse = diff["ci_high"] < 0
            retention = t["value"] / b["value"] if b["value"] else None
            delta = {"delta": diff["abs"], "delta_ci_low": diff["ci_low"], "delta_ci_high": diff["ci_high"]}
        tasks[base.name] = {"metric": metric, "base": b, "tuned": t, **delta, "retention": retention,
                            "flagged": worse}
        if retention is not None:
            retentions.append(retention)
        if worse:
            flagged.append(base.name)
    average = sum(retentions) / len(retentions) if retentions else None
    return {"tasks": tasks, "retention": average, "flagged": flagged}
