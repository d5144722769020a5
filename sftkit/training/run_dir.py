"""Self-describing run directories: resolved config, versions, tokenizer and chat template, exports."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("sftkit", "torch", "transformers", "peft", "accelerate", "datasets", "safetensors"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        out["sftkit_git_sha"] = sha.stdout.strip() or None
    except OSError:
        out["sftkit_git_sha"] = None
    return out


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    tmp.rename(path)


def write_jsonl(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def describe_run(out_dir: Path, config_yaml: str, tokenizer, splits: dict[str, list[dict]], data_report,
                 optional: tuple[str, ...] = ()) -> None:
    """Make a run directory describe itself: resolved config, versions, the exact data splits as JSONL
    (`data/NAME.jsonl`), the rejected rows, and the tokenizer with its chat template.

    A split named in `optional` with no rows gets no file, and an old one is removed (a resumed run that no
    longer uses it).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(config_yaml)
    write_json(out_dir / "versions.json", versions())
    (out_dir / "data").mkdir(exist_ok=True)
    for name, rows in splits.items():
        path = out_dir / "data" / f"{name}.jsonl"
        if rows or name not in optional:
            write_jsonl(path, rows)
        else:
            path.unlink(missing_ok=True)
    if data_report.rejects:
        data_report.write_rejects(out_dir / "rejects.jsonl")
    tokenizer.save_pretrained(out_dir / "tokenizer")


def peak_memory_mb(device) -> float:
    """Peak memory of this process so far, in MiB: GPU memory allocated by tensors on CUDA; on CPU the peak
    resident set size (ru_maxrss), which counts everything resident at the high point: the Python runtime and
    libraries, the weights, live tensors, and freed memory the C allocator kept (docs/benchmarks.md, "Memory:
    where the quickstart's peak goes")."""
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def release_freed_memory() -> None:
    """Collect garbage and hand the C heap's free pages back to the OS (glibc's `malloc_trim`).

    glibc keeps freed memory resident for reuse. After a phase whose allocations do not come back (the pre-run
    estimate's one-layer measurement) that memory only adds to the process's resident size. Costs milliseconds;
    a no-op where the C library has no `malloc_trim`.
    """
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        pass


def export_model(model, tokenizer, output_dir: Path, method: str, merge: bool, base_loader=None) -> dict[str, str]:
    """Write `adapter/` (LoRA and QLoRA, PEFT format) and/or `merged/` (plain transformers), both with the
    tokenizer. Returns the paths written.

    Merging a LoRA model folds the adapter into the base weights in place, so it is done last. QLoRA always
    writes `merged/` too, onto the dequantized 4-bit base from `base_loader()` (sftkit.models.
    merge_into_dequantized), so evaluation loads the function that was trained, not the adapter on the
    unquantized base.
    """
    written = {}
    if method in ("lora", "qlora"):
        adapter = output_dir / "adapter"
        model.save_pretrained(adapter, safe_serialization=True)
        tokenizer.save_pretrained(adapter)
        written["adapter"] = str(adapter)
        if method == "qlora":
            from sftkit.models import merge_into_dequantized

            model = merge_into_dequantized(base_loader(), adapter)
        elif merge:
            model = model.merge_and_unload()
    if method in ("full", "qlora") or merge:
        merged = output_dir / "merged"
        model.save_pretrained(merged, safe_serialization=True)
        tokenizer.save_pretrained(merged)
        written["merged"] = str(merged)
    return written
