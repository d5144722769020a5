"""The run's own log: metrics.jsonl rows, the experiment trackers (sftkit/training/trackers.py), and what changed
in the config across a resume."""

from __future__ import annotations

import json
from pathlib import Path

from sftkit.training.trackers import open_trackers, results_from_summary


def config_changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    """`section.key: old -> new` for every leaf that differs between two resolved configs."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += config_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            changes.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return changes


def truncate_metrics(path: Path, step: int) -> None:
    """Drop rows logged after `step` (a resumed run redoes those steps and logs them again)."""
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(r + "\n" for r in rows))


class MetricsLog:
    """metrics.jsonl plus the trackers of `train.report_to` (TensorBoard by default) for one run; a no-op
    unless `enabled` (the main process).

    resume_step: the step of the checkpoint a resumed run starts from; rows logged after it are dropped, since
    those steps run again. None starts a fresh file.
    config: the resolved config, given to every tracker (TensorBoard: the HParams of the run).

    `close()` ends metrics.jsonl at the end of the loop; `finish(summary)` hands the trackers the run's results
    (after the evaluation after training) and ends them.
    """

    def __init__(self, out_dir: Path, enabled: bool, resume_step: int | None = None,
                 report_to: tuple[str, ...] | list[str] = ("tensorboard",), config: dict | None = None):
        self.file, self.trackers, self.step = None, [], 0
        if not enabled:
            return
        path = out_dir / "metrics.jsonl"
        if resume_step is not None:
            truncate_metrics(path, resume_step)
        self.file = open(path, "a" if resume_step is not None else "w", encoding="utf-8")
        self.trackers = open_trackers(list(report_to), out_dir, config or {}, resume_step)

    def log(self, row: dict) -> None:
        """One row (`step` plus numbers); numeric values also go to every tracker at that step."""
        self.step = max(self.step, row["step"])
        if self.file:
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()
        for tracker in self.trackers:
            tracker.log(row)

    def close(self) -> None:
        if self.file:
            self.file.close()
            self.file = None
        for tracker in self.trackers:
            tracker.flush()

    def finish(self, summary: dict) -> None:
        """Give every tracker the run's results (`results_from_summary`) and end it."""
        self.close()
        results = results_from_summary(summary)
        trackers, self.trackers = self.trackers, []
        for tracker in trackers:
            tracker.finish(results, self.step)
