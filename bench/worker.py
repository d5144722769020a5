"""One benchmark contender in its own process (so its peak resident memory is its own):

    python bench/worker.py SPEC.json RESULT.json

`tool: sftkit` runs the real recipe (`sftkit.recipes.sft.train`, quiet) on `data.jsonl`; `tool: trl` runs
TRL's SFTTrainer on the same examples tokenised by sftkit (`tokens.jsonl`), in the order sftkit's first
epoch visits them, so that padded and padding-free TRL steps hold exactly sftkit's examples; `tool: parity`
computes the loss of one identical micro-batch through every loss path (bench/parity.py).

Both training tools are timed the same way: the wall time between the ends of consecutive optimizer steps
(data, forward, backward, clipping, optimizer, logging), after `num_warmup_steps` untimed steps. Token counts
come from the batches each tool actually built. Peak memory is VmHWM at the end of the last step, before
any export.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RunSpec, peak_rss_mb, read_tokens  # noqa: E402


class StepProbe:
    """Collects per-micro-batch counts and, at each optimizer step's end, one row per step."""

    def __init__(self):
        self.loop_start_time = self.loop_start_cpu_time = None
        self.pending = []  # (num_tokens, num_positions, num_trained_tokens, loss or None) per micro-batch
        self.steps = []

    def micro_batch(self, lengths: list[int], num_positions: int, num_trained_tokens: int, loss=None) -> None:
        """`lengths`: the examples' token counts (padding excluded); `num_positions`: tokens computed."""
        self.pending.append([lengths, num_positions, num_trained_tokens, loss])

    def step_end(self, loss: float | None = None) -> None:
        import torch

        if torch.cuda.is_available():  # step ends are host timestamps: wait for the device's queued work
            torch.cuda.synchronize()
        batches, self.pending = self.pending, []
        if loss is None:
            loss = sum(b[3] for b in batches)
        lengths = [n for b in batches for n in b[0]]
        self.steps.append({"step": len(self.steps) + 1, "end_time": time.perf_counter(),
                           "end_cpu_time": time.process_time(), "loss": float(loss),
                           "num_tokens": sum(lengths), "sum_squared_lengths": sum(n * n for n in lengths),
                           "num_positions": sum(b[1] for b in batches),
                           "num_trained_tokens": sum(b[2] for b in batches), "num_micro_batches": len(batches)})
        self.peak_rss_mb = peak_rss_mb()
        self.peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def run_sftkit(spec: RunSpec) -> dict:
    """The product's own loop. The probe only observes: it wraps the recipe's collate and progress reporter (put
    back afterwards: the GPU benchmark runs several specs in one process)."""
    import sftkit.recipes.sft as recipe
    import sftkit.training.loop as loop
    from sftkit.recipes.sft_config import SFTConfig

    probe = StepProbe()
    real_collate, real_reporter = recipe.collate, loop.Reporter

    def counting_collate(examples, packing, pad_id, pad_to_multiple=1):
        batch = real_collate(examples, packing, pad_id, pad_to_multiple)
        probe.micro_batch([len(x.input_ids) for x in examples], int(batch.input_ids.numel()),
                          batch.num_trained_tokens)
        return batch

    class ProbeReporter(real_reporter):
        def start_loop(self, total_steps, done):
            probe.loop_start_time, probe.loop_start_cpu_time = time.perf_counter(), time.process_time()
            super().start_loop(total_steps, done)

        def step(self, row):
            probe.step_end(row["train_loss"])
            super().step(row)

    config = SFTConfig.model_validate({
        "model": {"name": spec.model},
        "data": {"train_path": spec.data_path, "val_fraction": 0.0, "test_fraction": 0.0,
                 "max_length": spec.max_length},
        "train": {"method": spec.method, "micro_batch_size": spec.micro_batch_size, "grad_accum_steps": 1,
                  "max_steps": spec.num_steps, "learning_rate": spec.learning_rate, "lr_scheduler": "linear",
                  "warmup_ratio": 0.0, "weight_decay": 0.0, "max_grad_norm": 1.0, "seed": spec.seed,
                  "precision": spec.precision, "compile": spec.compile, "eval_every": 10**6, "save_every": 10**6},
        "lora": {"r": spec.lora_r, "alpha": spec.lora_alpha, "dropout": spec.lora_dropout},
        "output_dir": str(Path(spec.work_dir) / "run"),
    })
    recipe.collate, loop.Reporter = counting_collate, ProbeReporter  # start_process builds the run's reporter
    try:
        summary = recipe.train(config, quiet=True)
    finally:
        recipe.collate, loop.Reporter = real_collate, real_reporter
    for name in ("merged", "adapter", "checkpoints", "tensorboard", "data", "tokenizer"):
        shutil.rmtree(Path(config.output_dir) / name, ignore_errors=True)  # exports are not measured; free the disk
    if len(probe.steps) != spec.num_steps:
        raise RuntimeError(f"the probe saw {len(probe.steps)} steps, the recipe ran {summary.get('steps')}: the "
                           "recipe no longer reports through sftkit.training.loop.Reporter; update bench/worker.py")
    return {"trainable_params": summary["trainable_params"], "total_params": summary["total_params"],
            "loop_start_time": probe.loop_start_time, "loop_start_cpu_time": probe.loop_start_cpu_time,
            "steps": probe.steps, "peak_rss_mb": probe.peak_rss_mb, "peak_gpu_mb": probe.peak_gpu_mb,
            "summary_peak_memory_mb": summary["peak_memory_mb"], "estimate": summary.get("estimate"),
            "precision": summary.get("precision"), "attention": summary.get("attention"),
            "compiled": summary.get("compile"), "recompiles": summary.get("recompiles")}


def trl_trainer(spec: RunSpec, model, tokenizer, rows: list[dict], probe: StepProbe | None, **overrides):
    """An SFTTrainer over `rows` (pre-tokenised), with the spec's hyperparameters and the variant's options."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    class CountingTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if probe is not None and model.training:
                mask, starts = inputs.get("attention_mask"), inputs.get("cu_seq_lens_q")
                lengths = (mask.sum(dim=1) if mask is not None else starts.diff()).tolist()
                probe.micro_batch(lengths, int(inputs["input_ids"].numel()),
                                  int((inputs["labels"][..., 1:] != -100).sum()),
                                  float((out[0] if return_outputs else out).detach()))
            return out

    class ProbeCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            probe.loop_start_time, probe.loop_start_cpu_time = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kwargs):
            probe.step_end()

    options = {"output_dir": str(Path(spec.work_dir) / "trl"), "per_device_train_batch_size": spec.micro_batch_size,
               "gradient_accumulation_steps": 1, "max_steps": spec.num_steps, "learning_rate": spec.learning_rate,
               "lr_scheduler_type": "linear", "warmup_steps": 0, "weight_decay": 0.0, "max_grad_norm": 1.0,
               "max_length": spec.max_length, "seed": spec.seed,
               "report_to": "none", "save_strategy": "no", "disable_tqdm": True, "use_cpu": spec.device == "cpu",
               "train_sampling_strategy": "sequential", **spec.trl_options, **overrides}
    if not spec.defaults:  # forced precision; with `defaults` TRL keeps its own (bf16 autocast, also on CPU)
        options["bf16"] = spec.precision == "bf16"
    peft_config = None
    if spec.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
                                 target_modules="all-linear", task_type="CAUSAL_LM")
    torch.manual_seed(spec.seed)
    return CountingTrainer(model=model, args=SFTConfig(**options), train_dataset=Dataset.from_list(rows),
                           processing_class=tokenizer, peft_config=peft_config,
                           callbacks=[ProbeCallback()] if probe is not None else None)


def load_for_trl(spec: RunSpec):
    """Model and tokenizer exactly as a TRL user loads them (plain transformers, SDPA attention)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # TRL's default: fp32 weights under bf16 autocast (SFTConfig(bf16=True) with the weights as loaded)
    dtype = torch.bfloat16 if spec.precision == "bf16" and not spec.defaults else torch.float32
    model = AutoModelForCausalLM.from_pretrained(spec.model, dtype=dtype, attn_implementation="sdpa")
    tokenizer = AutoTokenizer.from_pretrained(spec.model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(spec.device), tokenizer


def ordered_rows(spec: RunSpec) -> list[dict]:
    """The tokenised examples in the order of sftkit's first epoch (its seeded shuffle)."""
    from sftkit.data.batching import epoch_order

    rows = read_tokens(spec.tokens_path)
    return [rows[i] for i in epoch_order(len(rows), spec.seed, 0)]


def run_trl(spec: RunSpec) -> dict:
    probe = StepProbe()
    model, tokenizer = load_for_trl(spec)
    trainer = trl_trainer(spec, model, tokenizer, ordered_rows(spec), probe)
    trainer.train()
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    return {"trainable_params": trainable, "total_params": total, "loop_start_time": probe.loop_start_time,
            "loop_start_cpu_time": probe.loop_start_cpu_time, "steps": probe.steps, "peak_rss_mb": probe.peak_rss_mb,
            "peak_gpu_mb": probe.peak_gpu_mb}


def run_one(spec: RunSpec) -> dict:
    started = time.perf_counter()
    if spec.tool == "sftkit":
        result = run_sftkit(spec)
    elif spec.tool == "trl":
        result = run_trl(spec)
    elif spec.tool == "parity":
        from bench.parity import run_parity

        result = run_parity(spec)
    else:
        raise SystemExit(f"unknown tool {spec.tool!r}")
    result.update(name=spec.name, tool=spec.tool, method=spec.method, num_warmup_steps=spec.num_warmup_steps,
                  wall_seconds=time.perf_counter() - started)
    return result


def main(argv: list[str]) -> None:
    """`SPEC.json RESULT.json [SPEC.json RESULT.json ...]`: several specs run one after another in this process
    (the GPU benchmark: imports once; each run's GPU peak is its own, the counter is reset between runs); a
    failing run writes its error and the next one still runs."""
    import gc
    import traceback

    import torch

    for spec_path, result_path in zip(argv[::2], argv[1::2]):
        spec = RunSpec.read(spec_path)
        if torch.cuda.is_available():
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            result = run_one(spec)
        except Exception as exc:  # noqa: BLE001 - the harness reports every failure and carries on
            if len(argv) == 2:
                raise
            traceback.print_exc()
            result = {"name": spec.name, "method": spec.method, "error": f"{type(exc).__name__}: {exc}"[:300]}
        Path(result_path).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
