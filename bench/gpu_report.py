"""The GPU benchmark's figures: ratios against TRL, the issue's targets, results.json and table.md; and the
synthetic chats its dry run trains on (the real run uses the bundle's BIG-bench conversations)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from bench.common import markdown_table

_WORDS = ("model data train token batch layer value result answer question reason because therefore which "
          "the a of to and in is that for on with as by this from at be it are or an was not").split()


def synthetic_chats(path: Path, num_examples: int, seed: int) -> Path:
    """Short prompt/completion chats with log-normal lengths (the dry run's data: no BIG-bench needed)."""
    rng = random.Random(seed)

    def text(median: float) -> str:
        return " ".join(rng.choice(_WORDS) for _ in range(max(1, round(rng.lognormvariate(math.log(median), 0.8)))))

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for _ in range(num_examples):
            f.write(json.dumps({"messages": [{"role": "user", "content": text(15)},
                                             {"role": "assistant", "content": text(8)}]}) + "\n")
    return path


def summarise(runs: list[dict]) -> dict:
    """Per (shape, method): each run's tokens/s ratio to TRL default and to the fastest TRL row, and the targets:
    sftkit >= 2x TRL default and >= 1.2x the best TRL row, peak memory <= TRL default's, and the 1.7B full
    fine-tune at >= 4k tokens per step with >= 45% MFU (stretch 50%)."""
    out = {}
    for key in dict.fromkeys((r["shape"], r["method"]) for r in runs):
        ok = {r["name"]: r for r in runs if (r["shape"], r["method"]) == key and "error" not in r}
        rate = {name: r["figures"]["tokens_per_second"] for name, r in ok.items()}
        trl = {n: v for n, v in rate.items() if n.startswith("trl-")}
        best = max(trl, key=trl.get) if trl else None
        ratios = {n: {"vs_trl_default": v / rate["trl-default"] if "trl-default" in rate else None,
                      "vs_best_trl": v / trl[best] if best else None} for n, v in rate.items()}
        targets = []
        if "sftkit" in ok and "trl-default" in ok:
            sft, default = ok["sftkit"], ok["trl-default"]
            targets += [("sftkit >= 2x trl-default tokens/s", ratios["sftkit"]["vs_trl_default"], 2.0),
                        (f"sftkit >= 1.2x the best TRL row ({best})", ratios["sftkit"]["vs_best_trl"], 1.2),
                        ("sftkit peak memory <= trl-default's (ratio)",
                         _gpu_mb(sft) / _gpu_mb(default) if _gpu_mb(default) else None, None)]
        big = next((r for n, r in ok.items() if n.startswith("sftkit-") and n != "sftkit-eager"), None)
        if big is not None and big.get("mfu") is not None:
            per_step = big["steps"][-1]["num_tokens"]
            targets += [(f"1.7B full: {per_step:,} tokens per step >= 4,096", per_step / 4096, 1.0),
                        ("1.7B full at ~4k tokens/step: MFU >= 45% (stretch 50%)", big["mfu"], 0.45)]
        out[f"{key[0]} {key[1]}"] = {"ratios": ratios, "best_trl": best, "targets": [
            {"what": what, "value": value,
             "met": value is not None and (value <= 1.0 if minimum is None else value >= minimum)}
            for what, value, minimum in targets]}
    return out


def _gpu_mb(run: dict) -> float | None:
    return run.get("peak_gpu_mb") or run["figures"]["peak_rss_mb"]


def table(report: dict) -> str:
    rows = []
    for r in report["runs"]:
        key = f"{r['shape']} {r['method']}"
        if "error" in r:
            rows.append([r["shape"], r["method"], r["name"], f"{r['error'][:70]}"] + [""] * 7)
            continue
        f, ratio = r["figures"], report["summary"][key]["ratios"][r["name"]]
        how = ", ".join(str(r[k]) for k in ("precision", "attention") if r.get(k))
        how += f", compiled ({r.get('recompiles')} recompiles)" if r.get("compiled") else ""
        rows.append([r["shape"], r["method"], r["name"], f"{f['tokens_per_second']:,.0f}",
                     f"{sum(s['num_tokens'] for s in r['steps']) / len(r['steps']):,.0f}",
                     "n/a" if r.get("mfu") is None else f"{r['mfu']:.1%}", f"{_gpu_mb(r) / 1024:,.1f}",
                     f"{f['padding_fraction']:.1%}", _ratio(ratio["vs_trl_default"]), _ratio(ratio["vs_best_trl"]),
                     how])
    text = markdown_table(["shape", "method", "contender", "tokens/s", "tokens/step", "MFU", "peak GiB", "padding",
                           "vs trl-default", "vs best TRL", "sftkit chose"], rows)
    lines = [f"- {'met' if t['met'] else 'NOT met'}: {key}: {t['what']} (measured "
             f"{'n/a' if t['value'] is None else format(t['value'], '.3g')})"
             for key, s in report["summary"].items() for t in s["targets"]]
    return text + "\n\n" + "\n".join(lines) + "\n"


def _ratio(value) -> str:
    return "—" if value is None else f"{value:.2f}x"


def write_report(out: Path, report: dict) -> None:
    """results.json (everything) and table.md (the markdown for docs/benchmarks.md), rewritten after each pair."""
    header = (f"Command: `{report['command']}` ({report.get('wall_seconds', 0) / 60:.1f} min). "
              f"Environment: {json.dumps(report['environment']['packages'])}; GPU "
              f"{report['environment'].get('gpu', 'none')}.\n\n")
    report["table"] = header + table(report)
    (out / "results.json").write_text(json.dumps(report, indent=2))
    (out / "table.md").write_text(report["table"])
