"""Training checkpoints that are complete or ignored, never half-read.

A checkpoint is written into `step-NNNNNNN.tmp/`, a `COMPLETE` marker is written last, and the directory is
renamed into place; resume only considers directories with the marker and deletes stale `.tmp` leftovers.
Weights are safetensors; optimizer/scheduler/RNG state is loaded with `torch.load(weights_only=True)` so a
crafted pickle cannot run code.
"""

from __future__ import annotations

import json
import pickle
import random
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sftkit.errors import UserError
from sftkit.paths import check_output

MARKER = "COMPLETE"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters by name (the LoRA adapter, or every weight for full fine-tuning)."""
    return {n: p.detach().to("cpu").contiguous().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in state]
    if missing:
        raise RuntimeError(f"checkpoint lacks {len(missing)} trainable tensors, e.g. {missing[:3]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def save_checkpoint(root: Path, step: int, model, optimizer, scheduler, trainer_state: dict, keep_last: int) -> Path:
    """Write a complete checkpoint for `step` and delete all but the newest `keep_last`."""
    return write_checkpoint(root, step, trainable_state(model), optimizer.state_dict(), scheduler.state_dict(),
                            trainer_state, keep_last)


def write_checkpoint(root: Path, step: int, model_state: dict, optimizer_state: dict, scheduler_state: dict,
                     trainer_state: dict, keep_last: int) -> Path:
    """Like `save_checkpoint`, from already gathered state dicts (FSDP gathers them on rank 0 first)."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:07d}"
    tmp = root / f"step-{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(model_state, tmp / "trainable.safetensors")
    torch.save(optimizer_state, tmp / "optimizer.pt")
    torch.save(scheduler_state, tmp / "scheduler.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(trainer_state, indent=2))
    (tmp / MARKER).write_text("ok\n")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in complete_checkpoints(root)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def refuse_to_overwrite(out_dir: Path, resume: bool, is_main: bool) -> None:
    """Raise UserError if `out_dir` (or its `checkpoints/`) cannot be created or written, or if it already holds
    a run (checkpoints or a summary) and this is not a resume."""
    check_output(out_dir, "output_dir", "dir")
    check_output(out_dir / "checkpoints", "checkpoint directory", "dir")
    existing = complete_checkpoints(out_dir / "checkpoints") if is_main else []
    if not resume and (existing or (out_dir / "summary.json").exists()):
        raise UserError(f"{out_dir} already holds a run: pass --resume to continue it, or set output_dir to a "
                        "new directory")


def complete_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first; stale `.tmp` and unmarked directories are removed."""
    if not root.exists():
        return []
    found = []
    for path in sorted(root.glob("step-*")):
        if path.name.endswith(".tmp") or not (path / MARKER).exists():
            shutil.rmtree(path, ignore_errors=True)
            continue
        found.append(path)
    return found


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict:
    """Restore weights, optimizer, scheduler and RNG; return the trainer state."""
    parts = read_checkpoint(path)
    load_trainable_state(model, parts["model"])
    optimizer.load_state_dict(parts["optimizer"])
    scheduler.load_state_dict(parts["scheduler"])
    set_rng_state(parts["rng"])
    return parts["trainer_state"]


def read_checkpoint(path: Path) -> dict:
    """The raw parts of a checkpoint: model, optimizer, scheduler, rng, trainer_state.

    Raises:
        UserError: a part is missing, unreadable or damaged (naming the file and what to do).
    """
    try:
        part = path / "trainable.safetensors"
        parts = {"model": load_file(part)}
        for name in ("optimizer", "scheduler", "rng"):
            part = path / f"{name}.pt"
            parts[name] = torch.load(part, weights_only=True)
        part = path / "trainer_state.json"
        parts["trainer_state"] = json.loads(part.read_text())
    except (OSError, SafetensorError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        if isinstance(exc, pickle.UnpicklingError):  # torch's own text suggests loading it unsafely
            reason = "it holds more than tensors, and loading that could run code"
        else:
            reason = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).splitlines()[0].split(". ")[0]
        raise UserError(f"checkpoint file {part} cannot be read ({reason}): delete {path} to resume from the "
                        "checkpoint before it, or start again without --resume") from None
    return parts


def save_best(root: Path, model) -> None:
    """Atomically replace `best/` with the current trainable weights."""
    write_best(root, trainable_state(model))


def write_best(root: Path, model_state: dict) -> None:
    tmp = root / "best.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(model_state, tmp / "trainable.safetensors")
    (tmp / MARKER).write_text("ok\n")
    shutil.rmtree(root / "best", ignore_errors=True)
    tmp.rename(root / "best")


def load_best(root: Path, model) -> bool:
    state = read_best(root)
    if state is None:
        return False
    load_trainable_state(model, state)
    return True


def read_best(root: Path) -> dict | None:
    path = root / "best"
    return load_file(path / "trainable.safetensors") if (path / MARKER).exists() else None
