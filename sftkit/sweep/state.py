"""The sweep's state, which is also its result: OUTPUT_DIR/sweep.json, rewritten atomically (a temporary file,
fsync, rename) after every rung of every trial and every later phase, so `kill -9` at any moment leaves the
last complete state and the same command continues from it without redoing finished work.

    {"version", "fingerprint", "status": running | complete, "objective", "minimize", "data": {splits},
     "rungs": [{"fraction", "entrants", "kept"}],
     "trials": [{"name", "id", "run_dir", "params", "total_steps", "status", "rung", "steps", "objective",
                 "early_stopped", "error", "history": [{"rung", "step", "objective", "val_loss", "seconds"}]}],
     "winner", "best", "base", "reproduction", "test", "budget_spent", "train_seconds"}

Trial status: `running` (still in the search), `finished` (trained to the end of its budget, or stopped by its
own early stopping), `stopped_early` (the halving stopped it at `rung`), `failed` (`error` says why).
Keys holding durations end in `seconds`; everything else is the same for a sweep run twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from sftkit.errors import UserError
from sftkit.training.metrics_log import config_changes

VERSION = 1


def fingerprint_hash(fingerprint: dict) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


class SweepState:
    """sweep.json in memory; `save()` writes it atomically."""

    def __init__(self, path: Path, data: dict):
        self.path, self.data = Path(path), data

    @classmethod
    def open(cls, out_dir: Path, fingerprint: dict, objective: str, minimize: bool) -> SweepState:
        """The state in `out_dir` (a fresh one when there is none). Raises UserError when it belongs to a
        sweep with a different config, listing what changed."""
        path = Path(out_dir) / "sweep.json"
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise UserError(f"{path} is damaged: delete {out_dir} to start the sweep again") from None
            if data.get("fingerprint_hash") != fingerprint_hash(fingerprint):
                changes = config_changes(data.get("fingerprint") or {}, fingerprint)
                raise UserError(f"{out_dir} holds a sweep of another config ({'; '.join(changes[:3]) or 'changed'}"
                                "): set output_dir to a new directory, or delete it to start again")
            return cls(path, data)
        return cls(path, {"version": VERSION, "fingerprint_hash": fingerprint_hash(fingerprint),
                          "fingerprint": fingerprint, "status": "running", "objective": objective,
                          "minimize": minimize, "data": None, "rungs": [], "trials": [], "winner": None,
                          "best": None, "base": None, "reproduction": None, "test": None, "budget_spent": False,
                          "train_seconds": 0.0})

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.data, handle, indent=2, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    @property
    def trials(self) -> list[dict]:
        return self.data["trials"]

    def trial(self, name: str) -> dict:
        return next(t for t in self.trials if t["name"] == name)

    def add_trial(self, name: str, trial_id: str, run_dir: str, params: dict, total_steps: int) -> dict:
        """The record of trial `name`, created (status running, no rung yet) the first time."""
        for record in self.trials:
            if record["name"] == name:
                return record
        record = {"name": name, "id": trial_id, "run_dir": run_dir, "params": params, "total_steps": total_steps,
                  "status": "running", "rung": None, "steps": 0, "objective": None, "early_stopped": False,
                  "error": None, "history": []}
        self.trials.append(record)
        return record

    def row(self, name: str, rung: int) -> dict | None:
        """Trial `name`'s result at `rung`, if recorded."""
        return next((r for r in self.trial(name)["history"] if r["rung"] == rung), None)

    def record(self, name: str, rung: int, row: dict) -> None:
        """Trial `name`'s result at `rung` (a failure when `row` has an error); saved at once."""
        record = self.trial(name)
        record["history"].append({"rung": rung, **row})
        record["rung"] = rung
        if row.get("error"):
            record.update(status="failed", error=row["error"])
        else:
            record.update(steps=row["step"], objective=row["objective"], early_stopped=row["early_stopped"])
        self.data["train_seconds"] = round(self.data["train_seconds"] + row.get("seconds", 0.0), 2)
        self.save()

    def ranked(self, rung: int, names: list[str]) -> list[str]:
        """`names` with a successful result at `rung`, best first (ties: the earlier trial)."""
        sign = 1 if self.data["minimize"] else -1
        scored = [(sign * self.row(n, rung)["objective"], i, n) for i, n in enumerate(names)
                  if self.row(n, rung) is not None and not self.row(n, rung).get("error")]
        return [n for _, _, n in sorted(scored)]
