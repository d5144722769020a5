"""Benchmark `sftkit data curate`: wall time and peak memory on deterministic synthetic SFT rows.

Generates ROWS conversations (seeded; Zipf-distributed English words) with planted exact duplicates, near
duplicates, low-quality replies, PII and rows containing an evaluation question, plus EVAL evaluation
examples, then runs the real command in a child process:

    sftkit data curate rows.jsonl -o curated.jsonl --decontaminate eval.jsonl

and reports its wall time, CPU time and peak memory (process and workers, sampled). Validation, exact and near
dedup, quality filters (token lengths included) and decontamination run; selection does not (no --target).

    python bench/curate_bench.py --rows 100000 --eval 5000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

def english_words() -> list[str]:
    """Lower-case English words, most frequent first: the whole-word entries of the default model's BPE
    vocabulary (`Ġword`, 2-14 letters), ordered by merge rank, which follows corpus frequency."""
    from sftkit.models import default_model_dir

    vocab = json.loads((default_model_dir() / "tokenizer.json").read_text())["model"]["vocab"]
    return [t[1:] for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])
            if t.startswith("Ġ") and t[1:].isascii() and t[1:].isalpha() and t[1:].islower() and 2 <= len(t) - 1 <= 14]


class Generator:
    """English-like text: Zipf-distributed real words, 10% of them rare compounds of two words (so that the
    tokenizer sees ~1.3 tokens per word, as in real text, rather than one)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        common = english_words()
        compounds = [common[self.rng.randrange(len(common))] + common[self.rng.randrange(len(common))]
                     for _ in range(len(common) // 4)]
        self.vocab = common + compounds
        weights = [1.0 / (rank + 2) for rank in range(len(common))]  # Zipf
        compound_weight = sum(weights) / 9 / len(compounds)  # compounds: 10% of all words
        weights += [compound_weight] * len(compounds)
        total, acc = sum(weights), 0.0
        self.cum = []
        for w in weights:
            acc += w / total
            self.cum.append(acc)

    def sentence(self, low: int = 6, high: int = 18) -> str:
        words = self.rng.choices(self.vocab, cum_weights=self.cum, k=self.rng.randint(low, high))
        return words[0].capitalize() + " " + " ".join(words[1:]) + self.rng.choice([".", ".", ".", "?", "!"])

    def text(self, low: int, high: int) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(low, high)))

    def conversation(self, index: int) -> dict:
        return {"id": f"row-{index}", "messages": [{"role": "user", "content": self.text(1, 2)},
                                                   {"role": "assistant", "content": self.text(2, 10)}]}


def generate(rows: int, num_eval: int, directory: Path, seed: int = 0) -> dict:
    gen = Generator(seed)
    eval_questions = []
    with open(directory / "eval.jsonl", "w") as handle:
        for i in range(num_eval):
            question = gen.sentence(14, 24)
            eval_questions.append(question)
            handle.write(json.dumps({"id": f"eval-{i}", "messages": [{"role": "user", "content": question},
                                     {"role": "assistant", "content": gen.sentence(3, 8)}]}) + "\n")
    planted = {"exact": 0, "near": 0, "quality": 0, "pii": 0, "contaminated": 0}
    recent: list[dict] = []
    with open(directory / "rows.jsonl", "w") as handle:
        for i in range(rows):
            roll = gen.rng.random()
            if roll < 0.03 and recent:
                src = gen.rng.choice(recent)
                row = {"id": f"row-{i}", "messages": [{"role": m["role"], "content": m["content"].upper()}
                                                      for m in src["messages"]]}
                planted["exact"] += 1
            elif roll < 0.06 and recent:
                src = gen.rng.choice(recent)
                words = src["messages"][1]["content"].split()
                for _ in range(max(1, len(words) // 40)):
                    words[gen.rng.randrange(len(words))] = gen.rng.choice(gen.vocab)
                row = {"id": f"row-{i}", "messages": [src["messages"][0],
                                                      {"role": "assistant", "content": " ".join(words)}]}
                planted["near"] += 1
            else:
                row = gen.conversation(i)
                if roll < 0.08:
                    kind = gen.rng.randrange(4)
                    reply = ["As an AI language model, I cannot help with that.", "...",
                             "ha " * 40, gen.text(3, 5)[:-1] + " and then the"][kind]
                    row["messages"][1]["content"] = reply
                    planted["quality"] += 1
                elif roll < 0.09:
                    row["messages"][1]["content"] += " Contact me at jane.roe@example.org or +1 202-555-0143."
                    planted["pii"] += 1
                elif roll < 0.10:
                    row["messages"][0]["content"] += " " + gen.rng.choice(eval_questions)
                    planted["contaminated"] += 1
            if len(recent) < 5000:
                recent.append(row)
            else:
                recent[gen.rng.randrange(5000)] = row
            handle.write(json.dumps(row) + "\n")
    return planted


class MemorySampler(threading.Thread):
    """Peak memory (and CPU time) of a process and its workers, sampled every 0.2 s. Memory is the sum
    of PSS (shared pages divided among the processes sharing them, the honest total) and the sum of RSS (counts
    shared pages repeatedly)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_pss, self.peak_rss = pid, 0, 0
        self.cpu = None  # the command's last (own, workers') CPU seconds
        self._done = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._done.wait(0.2):
            pss = rss = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    info = p.memory_full_info()
                    pss, rss = pss + info.pss, rss + info.rss
                times = root.cpu_times()
                self.cpu = (times.user + times.system, times.children_user + times.children_system)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)

    def stop(self) -> None:
        self._done.set()
        self.join()


def machine() -> str:
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores ({model}), {memory_gib:.0f} GiB RAM, " \
           f"Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--eval", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one, removed)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument("--reuse", action="store_true", help="reuse the data already generated in --dir")
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="curate-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    clock = time.perf_counter()
    stamp = directory / "planted.json"
    wanted = {"rows": args.rows, "eval": args.eval, "seed": args.seed}
    if args.reuse and stamp.exists() and json.loads(stamp.read_text())["wanted"] == wanted:
        planted = json.loads(stamp.read_text())["planted"]
    else:
        planted = generate(args.rows, args.eval, directory, args.seed)
        stamp.write_text(json.dumps({"wanted": wanted, "planted": planted}))
    generate_seconds = time.perf_counter() - clock
    sftkit = Path(sys.executable).with_name("sftkit")
    command = [str(sftkit) if sftkit.exists() else "sftkit", "data", "curate", str(directory / "rows.jsonl"),
               "-o", str(directory / "curated.jsonl"), "--decontaminate", str(directory / "eval.jsonl"), "--json"]
    load_before = os.getloadavg()[0]
    clock = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    memory = MemorySampler(proc.pid)
    memory.start()
    stdout, stderr = proc.communicate()
    wall_seconds = time.perf_counter() - clock
    memory.stop()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"curate failed ({proc.returncode}):\n{stderr[-3000:]}")
    summary = json.loads(stdout)
    report = json.loads(Path(summary["report_path"]).read_text())
    result = {
        "command": " ".join(command[:1] + [c.replace(str(directory) + "/", "") for c in command[1:]]),
        "rows": args.rows, "eval_examples": args.eval, "planted": planted,
        "wall_seconds": round(wall_seconds, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "cpu_seconds_main_process": round(memory.cpu[0], 1) if memory.cpu else None,
        "peak_memory_mib": {"pss": round(memory.peak_pss / 2**20), "rss_sum": round(memory.peak_rss / 2**20),
                            "largest_process_rss": round(usage.ru_maxrss / 1024)},
        "load_average_before": round(load_before, 2), "rows_per_second": round(args.rows / wall_seconds),
        "rows_kept": summary["rows_kept"], "rows_rejected": summary["rows_rejected"],
        "dropped_by_stage": {s["stage"]: s["dropped"] for s in summary["stages"]},
        "stage_seconds": report["seconds"], "generate_seconds": round(generate_seconds, 1), "machine": machine(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.dir is None:
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()
