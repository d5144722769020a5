"""What a sweep compares trials by, on the validation split only.

At a rung before the end of a trial's budget: the weights of the rung's step (the trials are compared after the
same number of steps). At the end: the weights the trial delivers (its best validation loss's). `val_loss` is
the recipe's validation loss; a metric is scored by the evaluation code (greedy replies, `eval.max_new_tokens`
of the base config) on OUTPUT_DIR/data/val.jsonl.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from sftkit.sweep.splits import split_path
from sftkit.sweep.trial import Trial, reached_end


class Objective:
    """Turns what a trial's training returned into its leaderboard row."""

    def __init__(self, name: str, out_dir: Path, max_new_tokens: int, num_threads: int | None = None):
        self.name, self.out_dir = name, Path(out_dir)
        self.max_new_tokens, self.num_threads = max_new_tokens, num_threads
        self._task = None

    @property
    def minimize(self) -> bool:
        return self.name == "val_loss"

    def row(self, trial: Trial, result: dict) -> dict:
        """`{step, objective, val_loss, ended, early_stopped, seconds}`, or `{error, seconds}`."""
        if "error" in result:
            return {"error": result["error"], "seconds": result["seconds"]}
        ended = reached_end(result)
        val_loss = result["best_val_loss"] if ended else result["val_loss"]
        row = {"step": result["steps"], "objective": val_loss, "val_loss": val_loss, "ended": ended,
               "early_stopped": bool(result.get("early_stopped")), "seconds": result["seconds"]}
        if self.name != "val_loss":
            started = time.perf_counter()
            row["objective"] = self.metric(trial.run_dir)
            row["eval_seconds"] = round(time.perf_counter() - started, 2)
        if row["objective"] is None or not math.isfinite(row["objective"]):
            return {"error": f"the objective is {row['objective']} at step {row['step']}", "seconds": row["seconds"]}
        return row

    def metric(self, run_dir: Path) -> float:
        """The objective metric of the weights run_dir exports (adapter/ or merged/) on the validation split."""
        from sftkit.eval.evaluator import EvalSettings, Evaluator
        from sftkit.eval.tasks import load_task

        if self._task is None:
            self._task = load_task(str(split_path(self.out_dir, "val")))
        settings = EvalSettings(max_new_tokens=self.max_new_tokens, metric=self.name, num_threads=self.num_threads)
        evaluator = Evaluator(str(run_dir), settings, use_cache=False)
        try:
            return evaluator.run(self._task).summary()[self.name]["value"]
        finally:
            evaluator.release()
