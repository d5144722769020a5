"""Where a training run's CPU memory goes: resident memory stage by stage through the real SFT recipe.

    .venv/bin/python bench/memory.py examples/quickstart.yaml --set train.max_steps=4 [--json OUT.json]

The recipe runs unchanged in a fresh process; its stages (imports, tokenizer, data, the pre-run estimate,
model load, LoRA, optimizer, validation, each micro-batch's forward, backward and optimizer step, checkpoints,
export, evaluation after training) are wrapped so that each one's end records the process's resident memory
(VmRSS, split into anonymous and file-backed) and the highest resident memory reached during it (VmHWM,
reset at every stage boundary through /proc/self/clear_refs, so every stage's own peak is exact, not
sampled). Because of those resets the run's own `peak_memory_mb` (ru_maxrss) is not meaningful here; the
run's peak is the largest stage peak.

The report: a table of stages in order (repeated stages, e.g. every training step, as first and worst of the
rest), and the peak attributed: what each earlier stage left resident, plus the transient above that.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MIB = 2**20
ALLOCATOR_ENV = ("MALLOC_", "GLIBC_TUNABLES", "LD_PRELOAD")  # what changes the C allocator, recorded with the result


def _status() -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile of this process, in bytes."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) * 1024
    return out


class Probe:
    """Records one segment per `mark(label)`: resident memory at its end and the peak within it."""

    def __init__(self):
        self.segments: list[dict] = []
        self.quiet = 0  # > 0 inside a stage whose inner calls are not stages of their own (validation)
        self.saved_bytes: list[int] = []  # per training forward: what autograd saved for backward
        self.param_bytes = self.trainable_bytes = 0
        self._start = _status()["VmRSS"]
        self._reset()

    @staticmethod
    def _reset() -> None:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS

    def mark(self, label: str) -> None:
        now = _status()
        self.segments.append({"label": label, "rss_start": self._start, "rss_end": now["VmRSS"],
                              "peak": max(now["VmHWM"], now["VmRSS"]), "anon_end": now["RssAnon"],
                              "file_end": now["RssFile"]})
        self._start = now["VmRSS"]
        self._reset()

    def wrap(self, owner, name: str, label: str, quiet_inside: bool = False) -> None:
        """Replace `owner.name` with a version that closes the running segment on entry and its own on exit."""
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapped(*args, **kwargs):
            if self.quiet:
                return original(*args, **kwargs)
            self.mark("other recipe code")
            self.quiet += quiet_inside
            try:
                return original(*args, **kwargs)
            finally:
                self.quiet -= quiet_inside
                self.mark(label)

        setattr(owner, name, wrapped)


def _count_saved(probe: Probe, forward):
    """`CausalLMLoss.forward` that also records the bytes autograd saves for backward (unique storages, no
    parameters) in the training forward's segment: the live activations, apart from what the allocator keeps."""
    import torch

    @functools.wraps(forward)
    def counted(module, batch):
        if not torch.is_grad_enabled():
            return forward(module, batch)
        params = {p.untyped_storage().data_ptr() for p in module.parameters()}
        probe.param_bytes = sum(p.nbytes for p in module.parameters())
        probe.trainable_bytes = sum(p.nbytes for p in module.parameters() if p.requires_grad)
        saved: dict[int, int] = {}

        def pack(t):
            ptr = t.untyped_storage().data_ptr()
            if ptr not in params:
                saved[ptr] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = forward(module, batch)
        probe.saved_bytes.append(sum(saved.values()))
        return loss

    return counted


def instrument(probe: Probe, skip_estimate: bool = False, trim_every_step: bool = False,
               torch_dropout: bool = False, keep_freed: bool = False) -> None:
    """Wrap the SFT recipe's stages (the functions it calls by module attribute, so the patches take).

    skip_estimate: the recipe's pre-run estimate is not made (to see what it leaves behind).
    trim_every_step: glibc's `malloc_trim(0)` after every optimizer step (to see what the allocator keeps).
    torch_dropout: LoRA dropout stays `torch.nn.Dropout` (float noise saved for backward), as before MaskDropout.
    keep_freed: no `release_freed_memory` after the estimate (what the recipe did before).
    """
    import ctypes

    import sftkit.estimate as estimate
    import sftkit.models as models
    from sftkit.recipes import sft, sft_data
    from sftkit.training import checkpoint as ckpt
    from sftkit.training import dropout, loop

    if skip_estimate:
        estimate.estimate_run = lambda *args, **kwargs: None
    if torch_dropout:
        dropout.use_mask_dropout = lambda model: 0
    if keep_freed:
        sft.release_freed_memory = lambda: None
    sft.CausalLMLoss.forward = _count_saved(probe, sft.CausalLMLoss.forward)

    stages = [(sft, "load_tokenizer", "tokenizer"), (sft_data, "load_conversations", "data: read"),
              (sft_data, "tokenize_examples", "data: tokenize"), (estimate, "estimate_run", "estimate: rest"),
              (sft, "load_model", "model weights (load_model)"),
              (models, "apply_lora", "LoRA adapter"), (loop, "build_optimizer", "optimizer (built)"),
              (sft, "describe_run", "run directory"), (ckpt, "write_best", "best weights written"),
              (ckpt, "write_checkpoint", "checkpoint written"), (sft.CausalLMLoss, "forward", "train: forward"),
              (sft, "export_model", "export"), (sft, "evaluate_after_training", "evaluation after training")]
    for owner, name, label in stages:
        probe.wrap(owner, name, label)
    probe.wrap(sft, "validate", "validation", quiet_inside=True)
    # the estimate builds its own (meta and one-layer) models with LoRA: not stages of the run
    probe.wrap(estimate, "_model_shape", "estimate: meta model", quiet_inside=True)
    probe.wrap(estimate, "measure_cpu", "estimate: one-layer measurement", quiet_inside=True)

    build = loop.build_optimizer
    trim = ctypes.CDLL("libc.so.6").malloc_trim if trim_every_step else lambda pad: None

    def after_step(*_):
        trim(0)
        probe.mark("train: optimizer step")

    def build_with_hooks(*args, **kwargs):
        optimizer = build(*args, **kwargs)
        optimizer.register_step_pre_hook(lambda *_: probe.mark("train: backward + clip"))
        optimizer.register_step_post_hook(after_step)
        return optimizer

    loop.build_optimizer = build_with_hooks


def child(config_path: str, overrides: list[str], result_path: str, options: dict) -> None:
    probe = Probe()
    import peft  # noqa: F401
    import torch
    import transformers  # noqa: F401

    from sftkit.config import load_config
    from sftkit.recipes import sft, sft_data

    probe.mark("python + torch + transformers + peft + sftkit imports")
    instrument(probe, **options)
    config = load_config(config_path, overrides)
    summary = sft.train(config, quiet=True)
    probe.mark("other recipe code")
    Path(result_path).write_text(json.dumps({
        "segments": probe.segments, "saved_bytes": probe.saved_bytes, "threads": torch.get_num_threads(),
        "options": options, "param_bytes": probe.param_bytes, "trainable_bytes": probe.trainable_bytes,
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith(ALLOCATOR_ENV)},
        "estimate_memory_mb": (summary.get("estimate") or {}).get("memory_mb"),
        "steps": summary.get("steps")}))


def aggregate(segments: list[dict]) -> list[dict]:
    """Stages in first-seen order; a repeated stage as its first occurrence and the worst of the others."""
    rows: dict[str, dict] = {}
    for seg in segments:
        change = seg["rss_end"] - seg["rss_start"]
        if seg["label"] not in rows:
            rows[seg["label"]] = {"label": seg["label"], "count": 1, "first_change": change,
                                  "first_peak": seg["peak"], "rest_change": 0, "rest_peak": 0, "total_change": change}
        else:
            row = rows[seg["label"]]
            row["count"] += 1
            row["rest_change"] = max(row["rest_change"], change)
            row["rest_peak"] = max(row["rest_peak"], seg["peak"])
            row["total_change"] += change
    return list(rows.values())


def components(result: dict) -> dict:
    """The run's peak split into what holds it: measured stage changes, counted weights and optimizer state,
    the saved activations of the last training forward before the peak, and the rest (memory glibc keeps
    resident after it was freed, and transients), which is the peak minus all the others."""
    segments = result["segments"]
    top = max(range(len(segments)), key=lambda i: segments[i]["peak"])
    change = lambda *prefixes: sum(s["rss_end"] - s["rss_start"] for s in segments[:top]  # noqa: E731
                                   if s["label"].startswith(prefixes))
    forwards = sum(s["label"] == "train: forward" for s in segments[:top + 1])
    parts = {
        "Python, torch, transformers, peft, sftkit (after imports)": segments[0]["rss_end"],
        "tokenizer and data": change("tokenizer", "data"),
        "pre-run estimate, left resident": change("estimate"),
        "model weights (memory-mapped model.safetensors, resident once touched)": result["param_bytes"],
        "LoRA gradients + AdamW state (counted)": 3 * result["trainable_bytes"],
        "activations saved for backward (largest micro-batch so far, measured)":
            max(result["saved_bytes"][:forwards], default=0),
    }
    rest = segments[top]["peak"] - sum(parts.values())
    parts["freed memory the C allocator keeps resident, and transients (the rest)"] = rest
    return {"peak": segments[top]["peak"], "stage": segments[top]["label"], "parts": parts}


def report(result: dict, command: str) -> str:
    mb = lambda b: f"{b / MIB:,.0f}"  # noqa: E731
    lines = [f"Command: `{command}` ({result['threads']} torch threads; malloc settings "
             f"{result['malloc_env'] or 'glibc defaults'}; {result['steps']} optimizer steps)", "",
             "| stage | times | RSS change, first (MiB) | peak in stage, first | worst change, later "
             "| worst peak, later |",
             "|---|---|---|---|---|---|"]
    for r in aggregate(result["segments"]):
        later = (mb(r["rest_change"]), mb(r["rest_peak"])) if r["count"] > 1 else ("", "")
        lines.append(f"| {r['label']} | {r['count']} | {mb(r['first_change'])} | {mb(r['first_peak'])} | "
                     f"{later[0]} | {later[1]} |")
    peak = components(result)
    lines += ["", f"Peak {mb(peak['peak'])} MiB, in `{peak['stage']}`:", "", "| held by | MiB |", "|---|---|"]
    lines += [f"| {label} | {mb(b)} |" for label, b in peak["parts"].items()]
    lines += [f"| **peak resident memory** | **{mb(peak['peak'])}** |"]
    if result.get("estimate_memory_mb"):
        lines += ["", f"The run's own estimate (MiB): {json.dumps(result['estimate_memory_mb'])}"]
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="stage-by-stage resident memory of one `sftkit train` run")
    p.add_argument("config", help="training YAML, e.g. examples/quickstart.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override, repeatable")
    p.add_argument("--skip-estimate", action="store_true", help="leave out the recipe's pre-run estimate")
    p.add_argument("--trim-every-step", action="store_true", help="malloc_trim(0) after every optimizer step")
    p.add_argument("--torch-dropout", action="store_true", help="LoRA dropout as torch.nn.Dropout (float noise)")
    p.add_argument("--keep-freed", action="store_true", help="no malloc_trim after the pre-run estimate")
    p.add_argument("--output-dir", help="keep the run here (default: a temporary directory)")
    p.add_argument("--json", help="also write the raw segments here")
    args = p.parse_args(argv)
    options = {"skip_estimate": args.skip_estimate, "trim_every_step": args.trim_every_step,
               "torch_dropout": args.torch_dropout, "keep_freed": args.keep_freed}
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"output_dir={args.output_dir or Path(tmp) / 'run'}", *args.overrides]
        out = Path(tmp) / "result.json"
        subprocess.run([sys.executable, __file__, "--child", args.config, json.dumps(overrides), str(out),
                        json.dumps(options)], check=True)
        result = json.loads(out.read_text())
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    flags = [f"--{k.replace('_', '-')}" for k, v in options.items() if v]
    shown = " ".join([args.config, *(f"--set {o}" for o in args.overrides), *flags])
    print(report(result, f"python bench/memory.py {shown}"))
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5]))
    else:
        main()
