"""Shared pieces of the training benchmark: the data mix, one run's specification, figures and the table.

Every contender reads the same examples: `data.jsonl` (chat messages, what `sftkit train` reads) and
`tokens.jsonl` (the same examples tokenised once by sftkit's own template labelling: `input_ids` and
`labels`, what TRL is given), so both tools train the same tokens with the same trained positions.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

# A realistic length mix: short classification answers, one-line answers, paragraph explanations, long
# multi-turn-style prompts (hhh_alignment, timedial, understanding_fables reach 300-1000 tokens).
DEFAULT_TASKS = ("strategyqa", "hhh_alignment", "understanding_fables", "timedial", "date_understanding",
                 "intent_recognition", "winowhy", "emoji_movie")


@dataclass
class RunSpec:
    """One contender run, written as JSON for `bench/worker.py`."""

    name: str  # row label: sftkit, trl-default, trl-padding-free, trl-packing, parity
    tool: str  # sftkit | trl | parity
    method: str  # lora | full
    model: str  # model directory (both tools load it the same way)
    data_path: str
    tokens_path: str
    work_dir: str
    micro_batch_size: int = 8
    max_length: int = 512
    learning_rate: float = 2e-4
    num_warmup_steps: int = 1  # run but not timed (first-call allocations, lazy initialisation)
    num_timed_steps: int = 4
    seed: int = 42
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    precision: str = "fp32"  # fp32 | bf16 | auto (sftkit's `train.precision`; TRL keeps its own default, bf16)
    device: str = "cpu"
    trl_options: dict = field(default_factory=dict)  # SFTConfig overrides that define a TRL variant
    defaults: bool = False  # each tool's own precision, gradient checkpointing and batching (no forced fp32)
    compile: str = "auto"  # sftkit's `train.compile`

    @property
    def num_steps(self) -> int:
        return self.num_warmup_steps + self.num_timed_steps

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def read(cls, path: str | Path) -> RunSpec:
        return cls(**json.loads(Path(path).read_text()))


def read_tokens(path: str | Path) -> list[dict]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def prepare_mix(out_dir: Path, tokenizer, max_length: int, examples_per_task: int, seed: int,
                tasks=DEFAULT_TASKS, data_file: str | None = None, min_length: int = 0) -> dict:
    """Write `data.jsonl` and `tokens.jsonl` under `out_dir`; return statistics of the mix.

    BIG-bench tasks (or `data_file`) are rendered as conversations; `examples_per_task` are drawn from each
    (seeded). Examples longer than `max_length` are left out rather than truncated, so that the two tools'
    truncation rules cannot make them train different tokens; how many of those drawn were left out is
    reported. `min_length` leaves out shorter ones too (a set of uniform length).
    """
    from sftkit.data.dataset import load_conversations, tokenize_examples

    rng = random.Random(seed)
    chosen, left_out = [], {}
    for spec in [data_file] if data_file else [f"bigbench:{t}" for t in tasks]:
        examples, _ = load_conversations(spec)
        rng.shuffle(examples)
        kept, left_out[spec] = [], 0
        for example in examples:  # tokenised one by one: only as many as needed
            (tok,), _ = tokenize_examples(tokenizer, [example], max_length=10**9)
            if not min_length <= tok.num_tokens <= max_length:
                left_out[spec] += 1
                continue
            kept.append((example, tok))
            if len(kept) == examples_per_task:
                break
        chosen += kept
    rng.shuffle(chosen)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "data.jsonl", "w") as data, open(out_dir / "tokens.jsonl", "w") as toks:
        for example, tok in chosen:
            data.write(json.dumps({"messages": example.messages}, ensure_ascii=False) + "\n")
            toks.write(json.dumps({"input_ids": tok.input_ids, "labels": tok.labels}) + "\n")
    lengths = sorted(t.num_tokens for _, t in chosen)
    trained = sum(t.num_trained_tokens for _, t in chosen)
    return {"num_examples": len(chosen), "sources": list(left_out), "left_out_for_length": left_out,
            "tokens_p50": lengths[len(lengths) // 2], "tokens_p95": lengths[int(0.95 * (len(lengths) - 1))],
            "tokens_max": lengths[-1], "tokens_mean": round(statistics.mean(lengths), 1),
            "trained_fraction": round(trained / sum(lengths), 4)}


def figures(result: dict) -> dict:
    """Per-run figures from a worker result: throughput over the timed steps, padding over all steps."""
    steps = result["steps"]
    warm = result["num_warmup_steps"]
    timed = steps[warm:]
    start = steps[warm - 1]["end_time"] if warm else result["loop_start_time"]
    seconds = timed[-1]["end_time"] - start
    cpu_start = steps[warm - 1]["end_cpu_time"] if warm else result["loop_start_cpu_time"]
    cpu_seconds = timed[-1]["end_cpu_time"] - cpu_start
    num_tokens = sum(s["num_tokens"] for s in timed)
    positions = sum(s["num_positions"] for s in steps)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "tokens_per_second": num_tokens / seconds,
        "tokens_per_cpu_second": num_tokens / cpu_seconds,
        "trained_tokens_per_second": sum(s["num_trained_tokens"] for s in timed) / seconds,
        "steps_per_second": len(timed) / seconds,
        "padding_fraction": 1 - sum(s["num_tokens"] for s in steps) / positions,
        "peak_rss_mb": result["peak_rss_mb"],
        "first_loss": steps[0]["loss"],
        "losses": [s["loss"] for s in steps],
    }


def round_pairs(runs: list[dict], name: str) -> list[tuple[dict, dict]]:
    """(sftkit run, `name` run) of each round where both finished: ratios are taken within a round."""
    return [(a, b) for a in runs for b in runs if a["name"] == "sftkit" and b["name"] == name
            and a["round"] == b["round"] and "error" not in a and "error" not in b]


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def loss_curve_gap(a: list[float], b: list[float]) -> float:
    """Largest relative difference between two per-step loss curves over their common steps."""
    return max(abs(x - y) / abs(y) for x, y in zip(a, b))


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict:
    """What the numbers were measured on: CPU, cores, memory, load, library versions."""
    import importlib.metadata as md

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines()
                          if x.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration):
        mem_kb = 0
    out = {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 2**20, 1),
           "load_average_1m": round(os.getloadavg()[0], 2), "python": platform.python_version()}
    for name in ("torch", "transformers", "trl", "peft", "accelerate"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
