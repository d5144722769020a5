"""Turn benchmark runs into the headline figures, the target checks and the markdown table of docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path

from bench.common import geometric_mean, loss_curve_gap, markdown_table, round_pairs

# The targets on this CPU: sftkit / TRL tokens per second, and peak memory against TRL's defaults.
TARGETS = {"lora": {"default": 2.0, "best": 1.2}, "full": {"default": 1.5}}
MAX_PADDING_FRACTION = 0.05
BEGIN, END = "<!-- sftkit-performance:cpu:begin -->", "<!-- sftkit-performance:cpu:end -->"


def _same_batches(a: dict, b: dict) -> bool:
    """Whether two runs trained the same tokens at every step (so their loss curves are comparable)."""
    return [s["num_trained_tokens"] for s in a["steps"]] == [s["num_trained_tokens"] for s in b["steps"]]


def aggregate(report: dict) -> dict:
    """Per method: figures per contender (pooled over rounds), sftkit/TRL ratios (per round, geometric mean),
    loss agreement, and which targets are met."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in report["runs"]):
        runs = [r for r in report["runs"] if r["method"] == method]
        rows = {}
        names = sorted(dict.fromkeys(r["name"] for r in runs), key=lambda n: (n != "sftkit", n != "trl-default"))
        for name in names:
            ok = [r for r in runs if r["name"] == name and "error" not in r]
            failed = [r["error"] for r in runs if r["name"] == name and "error" in r]
            if not ok:
                rows[name] = {"error": failed[0]}
                continue
            seconds = sum(r["figures"]["seconds"] for r in ok)
            timed = [s for r in ok for s in r["steps"][r["num_warmup_steps"]:]]
            cpu_seconds = sum(r["figures"]["cpu_seconds"] for r in ok)
            rows[name] = {
                "tokens_per_second": sum(s["num_tokens"] for s in timed) / seconds,
                "tokens_per_cpu_second": sum(s["num_tokens"] for s in timed) / cpu_seconds,
                "trained_tokens_per_second": sum(s["num_trained_tokens"] for s in timed) / seconds,
                "steps_per_second": len(timed) / seconds,
                "peak_rss_mb": max(r["figures"]["peak_rss_mb"] for r in ok),
                "padding_fraction": sum(r["figures"]["padding_fraction"] for r in ok) / len(ok),
                "first_loss": ok[0]["figures"]["first_loss"], "losses": ok[0]["figures"]["losses"],
                "rounds": len(ok), "errors": failed,
            }
        sft = rows.get("sftkit", {})
        for name, row in rows.items():
            if name == "sftkit" or "error" in row or "error" in sft:
                continue
            pairs = round_pairs(runs, name)
            for key, figure in (("speedup", "tokens_per_second"), ("cpu_time_speedup", "tokens_per_cpu_second")):
                row[key] = geometric_mean([a["figures"][figure] / b["figures"][figure] for a, b in pairs])
            row["memory_ratio"] = sft["peak_rss_mb"] / row["peak_rss_mb"]
            a, b = pairs[0]
            if _same_batches(a, b):
                row["first_loss_gap"] = abs(a["figures"]["first_loss"] - b["figures"]["first_loss"]) / abs(
                    b["figures"]["first_loss"])
                row["loss_curve_gap"] = loss_curve_gap(a["figures"]["losses"], b["figures"]["losses"])
        out[method] = {"rows": rows, "targets": _targets(method, rows)}
    return out


def _targets(method: str, rows: dict) -> list[dict]:
    checks = []
    sft, default = rows.get("sftkit", {}), rows.get("trl-default", {})
    best_name = max((n for n, r in rows.items() if n.startswith("trl-") and n != "trl-default" and "speedup" in r),
                    key=lambda n: rows[n]["tokens_per_second"], default=None)
    for against, minimum in TARGETS.get(method, {}).items():
        name = "trl-default" if against == "default" else best_name
        value = rows.get(name, {}).get("speedup") if name else None
        checks.append({"what": f"tokens/s vs {name or 'TRL best (not run)'} >= {minimum}x", "value": value,
                       "met": value is not None and value >= minimum})
    if "speedup" in default:
        checks.append({"what": "peak memory <= trl-default's", "value": default["memory_ratio"],
                       "met": default["memory_ratio"] <= 1.0})
    if "padding_fraction" in sft:
        checks.append({"what": f"sftkit padding < {MAX_PADDING_FRACTION:.0%}", "value": sft["padding_fraction"],
                       "met": sft["padding_fraction"] < MAX_PADDING_FRACTION})
    return checks


def _fmt(value, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def render(report: dict) -> str:
    """The markdown section: command, machine, data, parity, one table per method, target checks."""
    m, d, s = report["machine"], report["data"], report["settings"]
    lines = [f"Command: `{report['command']}` ({report['wall_seconds'] / 60:.1f} min)", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; load average {m['load_average_1m']} "
             f"at the end (other jobs share this machine); torch threads: {report['threads'] or 'torch default'}; "
             f"torch {m['torch']}, transformers {m['transformers']}, trl {m['trl']}, peft {m['peft']}.", "",
             f"Data: {d['num_examples']} examples from {', '.join(x.removeprefix('bigbench:') for x in d['sources'])}; "
             f"tokens per example p50 {d['tokens_p50']}, p95 {d['tokens_p95']}, max {d['tokens_max']}; "
             f"{d['trained_fraction']:.1%} of tokens trained (assistant replies). Micro-batch {s['micro_batch_size']}, "
             f"max length {s['max_length']}, lr {s['learning_rate']} linear, {s['num_warmup_steps']} untimed + "
             f"{s['num_timed_steps']} timed steps per round, {s['rounds']} round(s), {s['precision']}; LoRA r=16, "
             "alpha 32, dropout 0.05, all linear layers.", ""]
    parity = report["parity"]
    if "losses" in parity:
        lines += [f"Loss parity, first micro-batch ({parity['num_examples']} examples, {parity['num_trained_tokens']} "
                  f"trained tokens), relative to transformers' own loss (tolerance {parity['tolerance']:g}): "
                  + ", ".join(f"{k} {v:.6f} ({parity['relative_gaps'][k]:.1e})" for k, v in parity["losses"].items())
                  + f" -> {'PASS' if parity['passed'] else 'FAIL'}.", ""]
    else:
        lines += [f"Loss parity: not measured ({parity.get('error')}).", ""]
    header = ["contender", "tokens/s", "tokens/CPU-s", "trained tokens/s", "steps/s", "peak RSS MiB", "padding",
              "first loss", "loss-curve gap", "sftkit speed-up", "same, CPU time", "sftkit memory"]
    for method, result in report["summary"].items():
        table = []
        for name, r in result["rows"].items():
            if "error" in r:
                table.append([name, f"failed: {r['error'][:80]}"] + [""] * (len(header) - 2))
                continue
            table.append([name, f"{r['tokens_per_second']:.1f}", f"{r['tokens_per_cpu_second']:.1f}",
                          f"{r['trained_tokens_per_second']:.2f}",
                          f"{r['steps_per_second']:.4f}", f"{r['peak_rss_mb']:.0f}", f"{r['padding_fraction']:.1%}",
                          f"{r['first_loss']:.5f}", _fmt(r.get("loss_curve_gap"), ".2%", "—"),
                          _fmt(r.get("speedup"), ".2f", "—") + ("x" if "speedup" in r else ""),
                          _fmt(r.get("cpu_time_speedup"), ".2f", "—") + ("x" if "speedup" in r else ""),
                          _fmt(r.get("memory_ratio"), ".2f", "—") + ("x" if "memory_ratio" in r else "")])
        lines += [f"**{method}**", "", markdown_table(header, table), ""]
        lines += [f"- {'met' if t['met'] else 'NOT met'}: {t['what']} (measured {_fmt(t['value'], '.3g')})"
                  for t in result["targets"]] + [""]
    return "\n".join(lines)


def update_docs(path: Path, text: str) -> None:
    """Replace the generated block of the CPU performance section (markers), creating the section if absent."""
    body = f"{BEGIN}\n{text.rstrip()}\n{END}"
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        doc = head + body + rest.split(END, 1)[1]
    else:
        doc = doc.rstrip() + "\n\n## Performance: sftkit vs TRL on CPU\n\n" + body + "\n"
    path.write_text(doc)
