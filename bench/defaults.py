"""sftkit and TRL each with its own defaults, as users run them: whole-process wall time of one LoRA epoch.

The forced-precision rows of bench/cpu.py compare the tools' loops on equal terms (both fp32). Users do not force
anything: TRL's SFTTrainer trains with bf16 autocast (`bf16=True` by default, also on CPU), gradient
checkpointing and padded batches; sftkit with `precision: auto` (bf16 autocast on CPUs with native bf16), packed
rows and no checkpointing. Both read the same examples with the same micro-batch, learning rate, schedule and
LoRA settings; the time is the whole process's, from its start to its exit (imports, model load, data, the
epoch, sftkit's pre-run estimate and adapter export).

Two data sets: the mixed-length BIG-bench mix of bench/cpu.py, and a uniform short-chat set (real BIG-bench
conversations of 80-112 tokens). Beside the times: this CPU's measured fp32 and bf16 matrix-multiply peaks
(same threads, same run) and each contender's achieved model-FLOP rate.
"""

from __future__ import annotations

import math
import time

from bench.common import RunSpec, geometric_mean, markdown_table, round_pairs

UNIFORM_TASKS = ("winowhy", "intent_recognition", "strategyqa", "date_understanding")
TARGETS = {"uniform": 1.5, "mix": 2.5}  # sftkit speed-up in whole-process wall time over TRL's defaults
FLOP_RATE_TARGET = 0.40  # of the measured bf16 matmul peak
MATMUL_SHAPES = ((4096, 576, 1536), (2048, 2048, 2048))  # an MLP projection of a packed micro-batch; square


def matmul_peaks(threads: int | None, repeats: int = 5) -> dict:
    """Best GFLOP/s of `torch.mm` over MATMUL_SHAPES in fp32 and bf16, with `threads` torch threads."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    peaks = {}
    for dtype in (torch.float32, torch.bfloat16):
        best = 0.0
        for m, k, n in MATMUL_SHAPES:
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            torch.mm(a, b)  # first call: oneDNN picks and caches its kernel
            for _ in range(repeats):
                start = time.perf_counter()
                torch.mm(a, b)
                best = max(best, 2 * m * k * n / (time.perf_counter() - start) / 1e9)
        peaks[str(dtype).removeprefix("torch.")] = round(best, 1)
    return {"gflops": peaks, "threads": torch.get_num_threads(), "shapes": [list(s) for s in MATMUL_SHAPES]}


def contenders(data: dict, method: str, micro_batch_size: int, trl_variants: dict, base: dict) -> list[RunSpec]:
    """One epoch over `data` (its paths and example count) for sftkit's and each TRL variant's defaults."""
    steps = math.ceil(data["num_examples"] / micro_batch_size)
    common = {**base, "data_path": data["data_path"], "tokens_path": data["tokens_path"], "defaults": True,
              "micro_batch_size": micro_batch_size, "num_warmup_steps": 1, "num_timed_steps": steps - 1,
              "max_length": data["max_length"]}
    specs = [RunSpec(name="sftkit", tool="sftkit", method=method, work_dir="", **{**common, "precision": "auto"})]
    specs += [RunSpec(name=f"trl-{name}", tool="trl", method=method, work_dir="", trl_options=options, **common)
              for name, options in trl_variants.items()]
    return specs


def model_flops(result: dict, shape: dict, method: str) -> float:
    """Model FLOPs of the timed steps: per token 2 (forward) + 2 (input gradients) per non-embedding weight, + 2
    more (weight gradients) for full fine-tuning; causal attention 6 * layers * hidden * len^2 per example; the
    output head at trained tokens only (where the loss is)."""
    per_weight = 6 if method == "full" else 4
    layer_params = result["total_params"] - shape["vocab_size"] * shape["hidden_size"]  # tied embedding and head
    head = per_weight * shape["vocab_size"] * shape["hidden_size"]
    timed = result["steps"][result["num_warmup_steps"]:]
    return sum(per_weight * layer_params * s["num_tokens"] + head * s["num_trained_tokens"]
               + 6 * shape["num_hidden_layers"] * shape["hidden_size"] * s["sum_squared_lengths"] for s in timed)


def aggregate(runs: list[dict], peaks: dict) -> dict:
    """Per data set: pooled figures per contender, sftkit's per-round speed-ups (geometric mean), targets."""
    bf16_peak = peaks["gflops"]["bfloat16"]
    out = {}
    for data_name in dict.fromkeys(r["data"] for r in runs):
        mine = [r for r in runs if r["data"] == data_name]
        rows = {}
        for name in dict.fromkeys(r["name"] for r in mine):
            ok = [r for r in mine if r["name"] == name and "error" not in r]
            if not ok:
                rows[name] = {"error": next(r["error"] for r in mine if r["name"] == name)}
                continue
            rows[name] = {"process_seconds": sum(r["process_seconds"] for r in ok) / len(ok),
                          "tokens_per_second": sum(r["figures"]["tokens_per_second"] for r in ok) / len(ok),
                          "gflops": sum(r["gflops"] for r in ok) / len(ok),
                          "peak_rss_mb": max(r["figures"]["peak_rss_mb"] for r in ok),
                          "padding_fraction": ok[0]["figures"]["padding_fraction"],
                          "precision": ok[0].get("precision") or "bf16 autocast (TRL default)", "rounds": len(ok)}
            rows[name]["of_bf16_peak"] = rows[name]["gflops"] / bf16_peak
        sft = rows.get("sftkit", {})
        for name, row in rows.items():
            if name == "sftkit" or "error" in row or "error" in sft:
                continue
            pairs = round_pairs(mine, name)
            row["speedup"] = geometric_mean([b["process_seconds"] / a["process_seconds"] for a, b in pairs])
            row["memory_ratio"] = sft["peak_rss_mb"] / row["peak_rss_mb"]
        default = rows.get("trl-default", {})
        targets = [{"what": f"whole-process wall time vs trl-default >= {TARGETS[data_name]}x",
                    "value": default.get("speedup"), "met": (default.get("speedup") or 0) >= TARGETS[data_name]},
                   {"what": f"sftkit FLOP rate >= {FLOP_RATE_TARGET:.0%} of the bf16 matmul peak",
                    "value": sft.get("of_bf16_peak"), "met": (sft.get("of_bf16_peak") or 0) >= FLOP_RATE_TARGET},
                   {"what": "peak memory <= trl-default's", "value": default.get("memory_ratio"),
                    "met": default.get("memory_ratio") is not None and default["memory_ratio"] <= 1.0}]
        out[data_name] = {"rows": rows, "targets": targets}
    return out


def render(summary: dict, peaks: dict, data: dict) -> str:
    g = peaks["gflops"]
    lines = [f"Matrix-multiply peaks measured in the same run ({peaks['threads']} threads, best of "
             f"`torch.mm` on {' and '.join('x'.join(map(str, s)) for s in peaks['shapes'])}): fp32 "
             f"{g['float32']:,.0f} GFLOP/s, bf16 {g['bfloat16']:,.0f} GFLOP/s.", ""]
    header = ["contender", "precision", "whole process s", "train tokens/s", "model GFLOP/s", "of bf16 peak",
              "peak RSS MiB", "padding", "sftkit speed-up (wall)", "sftkit memory"]
    for name, result in summary.items():
        d = data[name]
        lines += [f"**{name}**: {d['num_examples']} examples, tokens per example p50 {d['tokens_p50']}, p95 "
                  f"{d['tokens_p95']}, max {d['tokens_max']}; {d['trained_fraction']:.1%} of tokens trained", ""]
        table = []
        for contender, r in result["rows"].items():
            if "error" in r:
                table.append([contender, f"failed: {r['error'][:80]}"] + [""] * (len(header) - 2))
                continue
            table.append([contender, r["precision"], f"{r['process_seconds']:.1f}", f"{r['tokens_per_second']:.1f}",
                          f"{r['gflops']:.1f}", f"{r['of_bf16_peak']:.1%}", f"{r['peak_rss_mb']:.0f}",
                          f"{r['padding_fraction']:.1%}",
                          f"{r['speedup']:.2f}x" if "speedup" in r else "—",
                          f"{r['memory_ratio']:.2f}x" if "memory_ratio" in r else "—"])
        lines += [markdown_table(header, table), ""]
        lines += [f"- {'met' if t['met'] else 'NOT met'}: {t['what']} (measured "
                  f"{'n/a' if t['value'] is None else format(t['value'], '.3g')})" for t in result["targets"]] + [""]
    return "\n".join(lines)
