"""Estimate against measurement on this CPU: `estimate_run` before a real `sftkit train`, in the same process.

    .venv/bin/python bench/estimate_check.py --data runs/bench-cpu/data/data.jsonl [--methods lora,full]

Each method runs in a fresh process (its own peak memory): estimate first (before the model is loaded, as the
recipe calls it), then the real recipe. Compared: the training loop's seconds (the recipe's per-step time,
trained_tokens / train_tokens_per_second) and the process's peak resident memory (summary peak_memory_mb).
The issue's bar is agreement within 30%.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, markdown_table  # noqa: E402

TOLERANCE = 0.30


def child(config_path: str, result_path: str) -> None:
    from sftkit.recipes.sft_config import SFTConfig
    from sftkit.estimate import estimate_run
    from sftkit.recipes.sft import train

    config = SFTConfig.model_validate(json.loads(Path(config_path).read_text()))
    estimate = estimate_run(config)
    summary = train(config, quiet=True)
    Path(result_path).write_text(json.dumps({"estimate": estimate, "summary": summary}))


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description="estimate vs measurement on this CPU")
    p.add_argument("--data", required=True, help="chat JSONL (e.g. the benchmark mix, runs/bench-cpu/data)")
    p.add_argument("--model", default="default")
    p.add_argument("--methods", default="lora,full")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--micro-batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    rows = []
    for method in args.methods.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            config = {"model": {"name": args.model},
                      "data": {"train_path": args.data, "val_fraction": 0.05, "max_length": 512},
                      "train": {"method": method, "micro_batch_size": args.micro_batch_size, "max_steps": args.steps,
                                "num_threads": args.threads, "eval_every": 10**6, "save_every": 10**6},
                      "output_dir": str(Path(tmp) / "run")}
            (Path(tmp) / "config.json").write_text(json.dumps(config))
            subprocess.run([sys.executable, __file__, "--child", str(Path(tmp) / "config.json"),
                            str(Path(tmp) / "result.json")], check=True)
            result = json.loads((Path(tmp) / "result.json").read_text())
        est, summary = result["estimate"], result["summary"]
        measured_seconds = summary["trained_tokens"] / summary["train_tokens_per_second"]
        rows.append({"method": method, "estimated_train_seconds": est["time"]["cpu"]["train_seconds"],
                     "measured_train_seconds": measured_seconds,
                     "estimated_peak_mb": est["memory_mb"]["total"], "measured_peak_mb": summary["peak_memory_mb"],
                     "memory_mb": est["memory_mb"], "basis": est["time"]["cpu"]["basis"]})
    table = [[r["method"], f"{r['estimated_train_seconds']:.0f}", f"{r['measured_train_seconds']:.0f}",
              f"{r['estimated_train_seconds'] / r['measured_train_seconds']:.2f}", f"{r['estimated_peak_mb']:,.0f}",
              f"{r['measured_peak_mb']:,.0f}", f"{r['estimated_peak_mb'] / r['measured_peak_mb']:.2f}"] for r in rows]
    m = machine()
    print(f"`python bench/estimate_check.py {' '.join(argv if argv is not None else sys.argv[1:])}` on {m['cpu']}, "
          f"{m['cores']} cores, load average {m['load_average_1m']}\n")
    print(markdown_table(["method", "estimated train s", "measured train s", "ratio", "estimated peak MiB",
                          "measured peak MiB", "ratio"], table))
    for r in rows:
        ok = all(abs(a / b - 1) <= TOLERANCE for a, b in ((r["estimated_train_seconds"], r["measured_train_seconds"]),
                                                          (r["estimated_peak_mb"], r["measured_peak_mb"])))
        print(f"- {r['method']}: {'within' if ok else 'NOT within'} {TOLERANCE:.0%}; memory estimate "
              f"{json.dumps(r['memory_mb'])}; time basis: {r['basis']}")
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
