"""Experiment trackers behind one interface (`train.report_to`): TensorBoard (always installed), and trackio,
MLflow and Weights & Biases from optional extras, each imported only when named.

Every tracker gets the run's resolved config once, each metrics row as it is logged, and at the end the run's
results (`results_from_summary`: best validation loss, gain over prompting, retention, safety rates, cost).
A resumed run continues the same tracker run: the ids are kept in OUTPUT_DIR/trackers.json.
"""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
from pathlib import Path

# report_to name -> (module imported, the pip extra that installs it)
OPTIONAL = {"trackio": ("trackio", "sftkit[trackio]"), "mlflow": ("mlflow", "sftkit[mlflow]"),
            "wandb": ("wandb", "sftkit[wandb]")}
NAMES = ("tensorboard", *OPTIONAL)
PROJECT = "sftkit"  # trackio project, MLflow experiment and W&B project unless the tracker's own env says


def missing_packages(names: list[str]) -> list[str]:
    """One problem line per named tracker whose package is not installed."""
    return [f"train.report_to: {name} needs its package: pip install '{OPTIONAL[name][1]}'"
            for name in names if name in OPTIONAL and importlib.util.find_spec(OPTIONAL[name][0]) is None]


def flat_config(config: dict, prefix: str = "") -> dict:
    """`section.key -> value` leaves of a resolved config; lists become their JSON text, None is left out
    (tracker params take numbers, strings and booleans)."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat_config(value, f"{prefix}{key}."))
        elif isinstance(value, (list, tuple)):
            out[prefix + key] = json.dumps(value)
        elif value is not None:
            out[prefix + key] = value
    return out


def results_from_summary(summary: dict) -> dict[str, float]:
    """The run's final figures as `result/NAME` numbers (what a leaderboard sorts by)."""
    out = {}
    for key in ("initial_val_loss", "best_val_loss", "best_step", "steps", "train_seconds", "wall_seconds",
                "peak_memory_mb", "train_tokens_per_second", "retention", "val_reward_accuracy"):
        if isinstance(summary.get(key), (int, float)):
            out[f"result/{key}"] = float(summary[key])
    gain = summary.get("gain_over_prompting") or {}
    for key in ("abs", "ci_low", "ci_high"):
        if isinstance(gain.get(key), (int, float)):
            out[f"result/gain_{key}"] = float(gain[key])
    for key, value in (summary.get("safety") or {}).items():
        if isinstance(value, (int, float)):
            out[f"result/safety_{key}"] = float(value)
    return out


def _numbers(row: dict) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if k != "step" and isinstance(v, (int, float))
            and not isinstance(v, bool)}


class Tracker:
    """One tracker: `log(row)` for every metrics row, `flush()` at the end of the training loop, `finish(results,
    step)` once, after the evaluation after training."""

    name = ""
    run = None  # the tracker library's run object, where it has one

    def log(self, row: dict) -> None:
        self.run.log(_numbers(row), step=row["step"])

    def flush(self) -> None:
        """Nothing by default: the libraries write on their own."""

    def finish(self, results: dict[str, float], step: int) -> None:
        raise NotImplementedError


class TensorBoardTracker(Tracker):
    """RUN/tensorboard: scalars per step, and at the end an HParams session (the flat config with the result
    scalars) in the run's own event file, so `tensorboard --logdir runs/` lists every run in one HParams table.

    Only the session summaries are written, not an experiment summary: TensorBoard then builds the experiment
    from all runs' sessions (the union of their hyperparameters) instead of taking one run's.
    """

    name = "tensorboard"

    def __init__(self, out_dir: Path, config: dict, resume_step: int | None):
        from torch.utils.tensorboard import SummaryWriter

        # a session-start marker at purge_step: TensorBoard's readers drop what earlier sessions wrote at that
        # step or later, so each step a resumed run redoes appears once
        purge_step = 0 if resume_step is None else resume_step + 1
        self.writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=purge_step)
        self.config = config

    def log(self, row: dict) -> None:
        for key, value in _numbers(row).items():
            self.writer.add_scalar(key, value, row["step"])

    def flush(self) -> None:
        self.writer.flush()

    def finish(self, results: dict[str, float], step: int) -> None:
        from torch.utils.tensorboard.summary import hparams

        hparam_values = {k: v if isinstance(v, (int, float, str, bool)) else str(v)
                         for k, v in flat_config(self.config).items()}
        _, session_start, session_end = hparams(hparam_values, results)
        self.writer.file_writer.add_summary(session_start)
        for key, value in results.items():
            self.writer.add_scalar(key, value, step)
        self.writer.file_writer.add_summary(session_end)
        self.writer.close()


class TrackioTracker(Tracker):
    """trackio's local store (its TRACKIO_DIR, or a Space/server when trackio's own settings say so)."""

    name = "trackio"

    def __init__(self, out_dir: Path, config: dict, resume_step: int | None, ids: dict):
        import trackio

        ids.setdefault("name", _run_name(out_dir))
        self.run = trackio.init(project=os.environ.get("TRACKIO_PROJECT", PROJECT), name=ids["name"], config=config,
                                resume="allow" if resume_step is not None else "never")

    def finish(self, results: dict[str, float], step: int) -> None:
        self.run.log(results, step=step)
        self.run.finish()


class MlflowTracker(Tracker):
    """MLflow: MLFLOW_TRACKING_URI when set, else a SQLite store beside the run directories
    (`sqlite:///runs/mlflow.db` for runs/NAME), so one `mlflow ui` lists every run."""

    name = "mlflow"

    def __init__(self, out_dir: Path, config: dict, resume_step: int | None, ids: dict):
        import mlflow

        self.mlflow = mlflow
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            mlflow.set_tracking_uri(f"sqlite:///{out_dir.resolve().parent / 'mlflow.db'}")
        mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", PROJECT))
        resumed = ids.get("run_id") if resume_step is not None else None
        run = mlflow.start_run(run_id=resumed, run_name=None if resumed else _run_name(out_dir))
        ids["run_id"] = run.info.run_id
        if not resumed:
            items = list(flat_config(config).items())
            for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
                mlflow.log_params(dict(items[start:start + 100]))

    def log(self, row: dict) -> None:
        self.mlflow.log_metrics(_numbers(row), step=row["step"])

    def finish(self, results: dict[str, float], step: int) -> None:
        self.mlflow.log_metrics(results, step=step)
        self.mlflow.end_run()


class WandbTracker(Tracker):
    """Weights & Biases, online or offline as its own settings say (WANDB_MODE=offline writes RUN/wandb/ only)."""

    name = "wandb"

    def __init__(self, out_dir: Path, config: dict, resume_step: int | None, ids: dict):
        import wandb

        if resume_step is None or "id" not in ids:
            ids["id"] = uuid.uuid4().hex[:12]  # W&B run ids: lower-case letters and digits
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", PROJECT), name=_run_name(out_dir),
                              id=ids["id"], resume="allow", dir=str(out_dir), config=config)

    def finish(self, results: dict[str, float], step: int) -> None:
        self.run.summary.update(results)
        self.run.finish()


def _run_name(out_dir: Path) -> str:
    return out_dir.resolve().name


def open_trackers(names: list[str], out_dir: Path, config: dict, resume_step: int | None) -> list[Tracker]:
    """Start every tracker named in `names` (`none` starts none); their run ids go to OUTPUT_DIR/trackers.json."""
    ids_path = out_dir / "trackers.json"
    ids = json.loads(ids_path.read_text()) if resume_step is not None and ids_path.is_file() else {}
    classes = {"trackio": TrackioTracker, "mlflow": MlflowTracker, "wandb": WandbTracker}
    trackers = []
    for name in names:
        if name == "tensorboard":
            try:
                trackers.append(TensorBoardTracker(out_dir, config, resume_step))
            except ImportError:  # tensorboard is a dependency, but a broken install must not stop training
                continue
        elif name in classes:
            trackers.append(classes[name](out_dir, config, resume_step, ids.setdefault(name, {})))
    if any(name in classes for name in names):
        ids_path.write_text(json.dumps(ids, indent=2))
    return trackers
