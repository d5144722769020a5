"""The run's own log: metrics.jsonl rows, TensorBoard events, and what changed in the config across a resume."""

from __future__ import annotations

import json
from pathlib import Path


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


def open_tensorboard(path: Path, purge_step: int = 0):
    """A TensorBoard SummaryWriter, or None when tensorboard cannot be imported.

    The writer opens with a session-start marker at `purge_step`: TensorBoard's readers then drop the events
    earlier sessions wrote at that step or later, so each step a resumed run redoes appears once, with its new
    values (the event files themselves keep the old records).
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but a broken install must not stop training
        return None
    return SummaryWriter(str(path), purge_step=purge_step)


class MetricsLog:
    """metrics.jsonl plus TensorBoard events of one run; a no-op unless `enabled` (the main process).

    resume_step: the step of the checkpoint a resumed run starts from; rows logged after it are dropped, since
    those steps run again. None starts a fresh file.
    """

    def __init__(self, out_dir: Path, enabled: bool, resume_step: int | None = None):
        self.file = self.writer = None
        if not enabled:
            return
        path = out_dir / "metrics.jsonl"
        if resume_step is not None:
            truncate_metrics(path, resume_step)
        self.file = open(path, "a" if resume_step is not None else "w", encoding="utf-8")
        self.writer = open_tensorboard(out_dir / "tensorboard", 0 if resume_step is None else resume_step + 1)

    def log(self, row: dict) -> None:
        """One row (`step` plus numbers); numeric values also become TensorBoard scalars at that step."""
        if self.file:
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()
        if self.writer:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, row["step"])

    def close(self) -> None:
        for handle in (self.file, self.writer):
            if handle:
                handle.close()
