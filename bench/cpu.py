"""sftkit vs TRL SFTTrainer, side by side on this machine: one command, two parts, one section of tables.

    .venv/bin/python bench/cpu.py                      # LoRA and full fine-tuning, default model, BIG-bench mix
    .venv/bin/python bench/cpu.py --rounds 2 --update-docs docs/benchmarks.md

Part `forced`: both tools' loops at one forced precision (`--precision`, fp32 by default), step throughput.
Part `defaults` (bench/defaults.py): each tool with its own defaults, whole-process wall time of one LoRA epoch on
the mix and on a uniform short-chat set, with this CPU's measured fp32/bf16 matmul peaks and achieved FLOP rates.

For each method, every contender (sftkit with its defaults, TRL with its defaults, TRL with its best
options) runs in its own process, one after another, in alternating order across rounds (so a change in
machine load hits every contender alike); ratios are taken within each round and averaged geometrically.
Same model, same examples, same hyperparameters (micro-batch, max length, learning rate and schedule,
LoRA r/alpha/dropout on all linear layers, AdamW, clipping, steps, precision, threads).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import defaults  # noqa: E402
from bench.common import RunSpec, figures, machine, prepare_mix  # noqa: E402
from bench.report import aggregate, render, update_docs  # noqa: E402

# TRL variants: its defaults (gradient checkpointing on, padded batches) and its fastest options. In the forced
# part the precision is not TRL's default (bf16 autocast); in the defaults part it is.
TRL_VARIANTS = {
    "default": {},
    "padding-free": {"padding_free": True, "gradient_checkpointing": False, "max_length": None},
    "packing": {"packing": True, "gradient_checkpointing": False},
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="default", help="model directory or `default` (SmolLM2-135M-Instruct)")
    p.add_argument("--methods", default="lora,full", help="comma-separated: lora, full")
    p.add_argument("--trl-variants", default="default,padding-free",
                   help="comma-separated of " + ", ".join(TRL_VARIANTS) + " (packing needs ~20 GB here: see docs)")
    p.add_argument("--data", default=None, help="a chat JSONL instead of the BIG-bench mix")
    p.add_argument("--examples-per-task", type=int, default=24, help="examples drawn from each source")
    p.add_argument("--micro-batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--learning-rate", type=float, default=2e-4)
    p.add_argument("--steps", type=int, default=3, help="timed optimizer steps per contender per round")
    p.add_argument("--warmup-steps", type=int, default=1, help="untimed steps before them")
    p.add_argument("--rounds", type=int, default=1, help="repeat every contender, alternating the order")
    p.add_argument("--threads", type=int, default=None, help="torch threads for every contender (default: torch's)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="forced part's precision")
    p.add_argument("--parts", default="forced,defaults", help="comma-separated: forced, defaults")
    p.add_argument("--defaults-trl-variants", default="default",
                   help="TRL variants in the defaults part (each with TRL's default precision)")
    p.add_argument("--uniform-data", default=None, help="a chat JSONL for the uniform set instead of BIG-bench")
    p.add_argument("--uniform-lengths", default="80,112", help="the uniform set's token range, MIN,MAX")
    p.add_argument("--uniform-per-task", type=int, default=64, help="uniform examples drawn from each source")
    p.add_argument("--out", default="runs/bench-cpu", help="directory for data, logs and results.json")
    p.add_argument("--update-docs", default=None, help="write the table into this markdown file's section")
    p.add_argument("--timeout", type=int, default=3600, help="seconds allowed per contender run")
    return p.parse_args(argv)


def run_worker(spec: RunSpec, threads: int | None, timeout: int) -> dict:
    """Run one contender in a fresh process; a crash or kill becomes an `error` entry, not an exception."""
    work = Path(spec.work_dir)
    shutil.rmtree(work, ignore_errors=True)  # a previous invocation's run would make the recipe refuse to start
    work.mkdir(parents=True)
    spec_path, result_path = spec.write(work / "spec.json"), work / "result.json"
    result_path.unlink(missing_ok=True)
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    started = time.perf_counter()
    with open(work / "log.txt", "w") as log:
        try:
            proc = subprocess.run([sys.executable, str(Path(__file__).with_name("worker.py")), str(spec_path),
                                   str(result_path)], stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    if code == 0 and result_path.exists():
        # the whole process, interpreter start to exit: what a user waits for
        return {**json.loads(result_path.read_text()), "process_seconds": time.perf_counter() - started}
    why = {-9: "killed (SIGKILL: out of memory?)", "timeout": f"over {timeout} s"}.get(code, f"exit code {code}")
    tail = (work / "log.txt").read_text(errors="replace").strip().splitlines()[-1:] or [""]
    return {"name": spec.name, "method": spec.method, "error": f"{why}: {tail[0][:200]}", "log": str(work / "log.txt")}


def contenders(args, method: str, base: dict) -> list[RunSpec]:
    specs = [RunSpec(name="sftkit", tool="sftkit", method=method, work_dir="", **base)]
    for variant in [v for v in args.trl_variants.split(",") if v]:
        if variant not in TRL_VARIANTS:
            raise SystemExit(f"unknown TRL variant {variant!r}: use {', '.join(TRL_VARIANTS)}")
        specs.append(RunSpec(name=f"trl-{variant}", tool="trl", method=method, work_dir="",
                             trl_options=TRL_VARIANTS[variant], **base))
    return specs


def main(argv=None) -> dict:
    args = parse_args(argv)
    from sftkit.models import load_tokenizer, resolve_model_path

    out = Path(args.out)
    model = resolve_model_path(args.model)
    started = time.time()
    tokenizer = load_tokenizer(model)
    mix = prepare_mix(out / "data", tokenizer, args.max_length, args.examples_per_task, seed=42, data_file=args.data)
    base = {"model": model, "data_path": str(out / "data" / "data.jsonl"),
            "tokens_path": str(out / "data" / "tokens.jsonl"), "micro_batch_size": args.micro_batch_size,
            "max_length": args.max_length, "learning_rate": args.learning_rate, "num_warmup_steps": args.warmup_steps,
            "num_timed_steps": args.steps, "precision": args.precision}
    parts = [x for x in args.parts.split(",") if x]
    report = {"command": "python bench/cpu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": machine(), "threads": args.threads, "data": mix, "settings": {**base, "rounds": args.rounds}}
    if "forced" in parts:
        report.update(run_forced(args, base, out))
    if "defaults" in parts:
        report["defaults"] = run_defaults(args, base, out, tokenizer, mix)
    report["wall_seconds"] = round(time.time() - started, 1)
    text = ""
    if "forced" in parts:
        report["summary"] = aggregate(report)
        text = render(report)
    if "defaults" in parts:
        d = report["defaults"]
        text += ("\n### Each tool with its defaults: whole-process wall time, one LoRA epoch\n\n"
                 + defaults.render(d["summary"], d["matmul_peaks"], d["data"]))
    (out / "results.json").write_text(json.dumps(report, indent=2))
    print(text)
    if args.update_docs:
        update_docs(Path(args.update_docs), text)
    return report


def run_forced(args, base: dict, out: Path) -> dict:
    """The forced-precision part: parity, then every method's contenders in alternating order per round."""
    parity = run_worker(RunSpec(name="parity", tool="parity", method="full", work_dir=str(out / "parity"), **base),
                        args.threads, args.timeout)
    print(f"parity: {json.dumps(parity.get('relative_gaps', parity.get('error')))}", file=sys.stderr)
    runs = []
    methods = [m for m in args.methods.split(",") if m]
    for round_index in range(args.rounds):
        for method_index, method in enumerate(methods):
            specs = contenders(args, method, base)
            # Each method's order flips from round to round (and from method to method within a round).
            for spec in reversed(specs) if (round_index + method_index) % 2 else specs:
                spec.work_dir = str(out / "runs" / f"{method}-{spec.name}-r{round_index}")
                runs.append(_timed_run(spec, args, round_index))
    return {"parity": parity, "runs": runs}


def run_defaults(args, base: dict, out: Path, tokenizer, mix: dict) -> dict:
    """The defaults part: the CPU's matmul peaks, then sftkit and TRL defaults on the mix and the uniform set."""
    peaks = defaults.matmul_peaks(args.threads)
    print(f"matmul peaks: {peaks['gflops']} GFLOP/s", file=sys.stderr)
    shortest, longest = (int(x) for x in args.uniform_lengths.split(","))
    uniform = prepare_mix(out / "uniform", tokenizer, longest, args.uniform_per_task, seed=42,
                          tasks=defaults.UNIFORM_TASKS, data_file=args.uniform_data, min_length=shortest)
    data = {"mix": {**mix, "data_path": base["data_path"], "tokens_path": base["tokens_path"],
                    "max_length": args.max_length},
            "uniform": {**uniform, "data_path": str(out / "uniform" / "data.jsonl"),
                        "tokens_path": str(out / "uniform" / "tokens.jsonl"), "max_length": longest}}
    variants = {v: TRL_VARIANTS[v] for v in args.defaults_trl_variants.split(",") if v}
    shape = json.loads((Path(base["model"]) / "config.json").read_text())
    runs = []
    for round_index in range(args.rounds):
        for data_index, (data_name, d) in enumerate(data.items()):
            specs = defaults.contenders(d, "lora", args.micro_batch_size, variants, base)
            for spec in reversed(specs) if (round_index + data_index) % 2 else specs:
                spec.work_dir = str(out / "defaults" / f"{data_name}-{spec.name}-r{round_index}")
                result = _timed_run(spec, args, round_index, label=data_name)
                result["data"] = data_name
                if "error" not in result:
                    result["gflops"] = defaults.model_flops(result, shape, "lora") / result["figures"]["seconds"] / 1e9
                runs.append(result)
    return {"matmul_peaks": peaks, "data": data, "runs": runs, "summary": defaults.aggregate(runs, peaks)}


def _timed_run(spec: RunSpec, args, round_index: int, label: str | None = None) -> dict:
    result = run_worker(spec, args.threads, args.timeout)
    result["round"] = round_index
    what = f"round {round_index} {label or spec.method:7s} {spec.name:17s}"
    if "error" in result:
        print(f"{what} FAILED: {result['error']}", file=sys.stderr)
        return result
    result["figures"] = figures(result)
    f = result["figures"]
    print(f"{what} {f['tokens_per_second']:8.1f} tok/s  peak {f['peak_rss_mb']:7.0f} MiB  padding "
          f"{f['padding_fraction']:.1%}  process {result['process_seconds']:.1f} s", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
