"""The benchmark harness on tiny models: figures, ratios and targets, docs update, parity, both scripts end to end.

No timing assertions: the machine is shared, so only the arithmetic on recorded times and the shape of the
results are checked.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import RunSpec, figures, prepare_mix
from bench.report import BEGIN, END, aggregate, render, update_docs
from tests.helpers import write_sft_data

ROOT = Path(__file__).resolve().parents[2]


def fake_run(name, method, round_index, tokens_per_second, peak, trained=(5, 7, 9), loss=2.0):
    """A worker result with three steps (one untimed) of 100 tokens each at `tokens_per_second` (twice that
    per CPU-second)."""
    steps = [{"step": i + 1, "end_time": 10 + i * 100 / tokens_per_second,
              "end_cpu_time": 5 + i * 50 / tokens_per_second,
              "loss": loss - 0.1 * i, "num_tokens": 100, "num_positions": 100 if name == "sftkit" else 200,
              "num_trained_tokens": trained[i], "sum_squared_lengths": 2000} for i in range(3)]
    run = {"name": name, "method": method, "round": round_index, "num_warmup_steps": 1, "steps": steps,
           "peak_rss_mb": peak, "loop_start_time": 0.0, "loop_start_cpu_time": 0.0}
    run["figures"] = figures(run)
    return run


def test_figures_skip_warmup_and_count_padding():
    f = fake_run("trl-default", "lora", 0, 50.0, 1000)["figures"]
    assert f["seconds"] == pytest.approx(4.0)  # two timed steps of 100 tokens at 50 tokens/s
    assert f["tokens_per_second"] == pytest.approx(50.0)
    assert f["tokens_per_cpu_second"] == pytest.approx(100.0)
    assert f["trained_tokens_per_second"] == pytest.approx(16 / 4.0)
    assert f["steps_per_second"] == pytest.approx(0.5)
    assert f["padding_fraction"] == pytest.approx(0.5)
    assert f["first_loss"] == 2.0 and f["losses"] == pytest.approx([2.0, 1.9, 1.8])


def test_model_flops_count_layers_head_at_trained_tokens_and_attention():
    from bench.defaults import model_flops

    shape = {"vocab_size": 100, "hidden_size": 10, "num_hidden_layers": 2}
    run = fake_run("sftkit", "lora", 0, 50.0, 1000)  # timed steps: 100 tokens, 7 and 9 trained, sum len^2 2000
    run["total_params"] = 100 * 10 + 5000  # tied embedding + 5,000 layer weights
    per_step = lambda trained: 4 * 5000 * 100 + 4 * 100 * 10 * trained + 6 * 2 * 10 * 2000  # noqa: E731
    assert model_flops(run, shape, "lora") == per_step(7) + per_step(9)
    assert model_flops(run, shape, "full") == model_flops(run, shape, "lora") + 2 * 5000 * 200 + 2 * 1000 * 16


def test_defaults_speedup_is_whole_process_time_per_round():
    from bench.defaults import aggregate

    def run(name, round_index, seconds, peak):
        r = fake_run(name, "lora", round_index, 50.0, peak)
        return {**r, "data": "mix", "process_seconds": seconds, "gflops": 60.0}

    runs = [run("sftkit", 0, 30.0, 900), run("trl-default", 0, 90.0, 1000),
            run("sftkit", 1, 40.0, 950), run("trl-default", 1, 60.0, 990)]
    summary = aggregate(runs, {"gflops": {"float32": 50.0, "bfloat16": 200.0}})["mix"]
    assert summary["rows"]["trl-default"]["speedup"] == pytest.approx(math.sqrt(3 * 1.5))
    assert summary["rows"]["trl-default"]["memory_ratio"] == pytest.approx(950 / 1000)
    assert summary["rows"]["sftkit"]["of_bf16_peak"] == pytest.approx(0.3)
    # 2.12x < 2.5x on the mix; 30% < 40% of the bf16 peak; 950 <= 1,000 MiB
    assert [t["met"] for t in summary["targets"]] == [False, False, True]
def _report(runs):
    report = {"runs": runs, "parity": {"error": "not run"}, "command": "python bench/cpu.py", "threads": 1,
              "wall_seconds": 60.0, "settings": {"micro_batch_size": 8, "max_length": 512, "learning_rate": 2e-4,
                                                 "num_warmup_steps": 1, "num_timed_steps": 2, "rounds": 2,
                                                 "precision": "fp32"},
              "machine": {"cpu": "test cpu", "cores": 2, "memory_gb": 8, "load_average_1m": 1.0, "torch": "t",
                          "transformers": "t", "trl": "t", "peft": "p"},
              "data": {"num_examples": 10, "sources": ["bigbench:x"], "tokens_p50": 1, "tokens_p95": 2,
                       "tokens_max": 3, "trained_fraction": 0.1}}
    report["summary"] = aggregate(report)
    return report


def test_ratios_are_per_round_geometric_means_and_targets_are_checked():
    runs = [fake_run("sftkit", "lora", 0, 30, 900), fake_run("trl-default", "lora", 0, 10, 1000),
            fake_run("trl-padding-free", "lora", 0, 25, 800, trained=(5, 7, 8)),
            fake_run("sftkit", "lora", 1, 40, 950), fake_run("trl-default", "lora", 1, 20, 990),
            fake_run("trl-padding-free", "lora", 1, 25, 800, trained=(5, 7, 8)),
            fake_run("sftkit", "full", 0, 12, 2000), fake_run("trl-default", "full", 0, 10, 1500)]
    runs.append({"name": "trl-packing", "method": "full", "round": 0, "error": "killed (SIGKILL: out of memory?)"})
    report = _report(runs)
    lora = report["summary"]["lora"]["rows"]
    assert lora["trl-default"]["speedup"] == pytest.approx(math.sqrt(3 * 2))
    assert lora["trl-default"]["cpu_time_speedup"] == pytest.approx(math.sqrt(3 * 2))
    assert lora["trl-padding-free"]["speedup"] == pytest.approx(math.sqrt(1.2 * 1.6))
    assert lora["trl-default"]["memory_ratio"] == pytest.approx(950 / 1000)
    assert lora["trl-default"]["first_loss_gap"] == 0.0 and lora["trl-default"]["loss_curve_gap"] == 0.0
    assert "loss_curve_gap" not in lora["trl-padding-free"]  # different batches: curves not comparable
    assert [t["met"] for t in report["summary"]["lora"]["targets"]] == [True, True, True, True]
    full = report["summary"]["full"]
    assert full["rows"]["trl-packing"] == {"error": "killed (SIGKILL: out of memory?)"}
    assert [(t["what"], t["met"]) for t in full["targets"]] == [
        ("tokens/s vs trl-default >= 1.5x", False), ("peak memory <= trl-default's", False),
        ("sftkit padding < 5%", True)]
    text = render(report)
    assert "| sftkit | 34.3 |" in text  # pooled: 400 tokens in 200/30 + 200/40 s
    assert "| trl-packing | failed: killed" in text
    assert "NOT met: tokens/s vs trl-default >= 1.5x (measured 1.2)" in text


def test_update_docs_replaces_only_its_block(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Curation\n\nkept\n")
    update_docs(doc, "first table")
    update_docs(doc, "second table")
    text = doc.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert "second table" in text and "first table" not in text
    assert text.startswith("# Benchmarks\n\n## Curation\n\nkept\n")


@pytest.fixture(scope="module")
def mix(tmp_path_factory, tokenizer):
    out = tmp_path_factory.mktemp("mix")
    stats = prepare_mix(out, tokenizer, 512, 24, seed=42, data_file=str(write_sft_data(out / "chats.jsonl")))
    return out, stats


def test_prepare_mix_writes_the_same_examples_twice(mix):
    out, stats = mix
    chats = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
    tokens = [json.loads(x) for x in (out / "tokens.jsonl").read_text().splitlines()]
    assert stats["num_examples"] == len(chats) == len(tokens) == 24
    assert all(len(t["input_ids"]) == len(t["labels"]) <= 512 for t in tokens)
    assert 0 < stats["trained_fraction"] < 1


def test_parity_passes_and_detects_a_wrong_loss(mix, tiny_model_dir, monkeypatch):
    from bench.parity import run_parity
    from sftkit.training.loss import CausalLMLoss

    out, _ = mix
    spec = RunSpec(name="parity", tool="parity", method="full", model=str(tiny_model_dir),
                   data_path=str(out / "data.jsonl"), tokens_path=str(out / "tokens.jsonl"),
                   work_dir=str(out / "parity"), micro_batch_size=4)
    good = run_parity(spec)
    assert good["passed"] and good["max_relative_gap"] < 1e-5
    assert len(good["losses"]) == 5 and good["num_examples"] == 4
    forward = CausalLMLoss.forward
    monkeypatch.setattr(CausalLMLoss, "forward", lambda self, batch: forward(self, batch) * 1.01)
    bad = run_parity(spec)
    assert not bad["passed"]
    assert bad["relative_gaps"]["sftkit packed (varlen attention)"] == pytest.approx(0.01, rel=1e-3)
    assert bad["relative_gaps"]["trl padded (defaults)"] < 1e-5


@pytest.mark.slow
def test_cpu_bench_end_to_end(tmp_path, tiny_model_dir):
    from bench.cpu import main

    data = write_sft_data(tmp_path / "chats.jsonl", n=32)
    report = main(["--model", str(tiny_model_dir), "--data", str(data), "--methods", "lora", "--trl-variants",
                   "default", "--steps", "1", "--micro-batch-size", "4", "--examples-per-task", "32",
                   "--threads", "1", "--out", str(tmp_path / "out"), "--update-docs", str(tmp_path / "doc.md"),
                   "--uniform-data", str(data), "--uniform-lengths", "1,512", "--uniform-per-task", "8"])
    assert report["parity"]["passed"]
    rows = report["summary"]["lora"]["rows"]
    assert set(rows) == {"sftkit", "trl-default"}
    assert rows["sftkit"]["padding_fraction"] == 0.0 < rows["trl-default"]["padding_fraction"]
    assert rows["trl-default"]["first_loss_gap"] < 1e-3  # same first batch through both tools
    assert rows["trl-default"]["speedup"] > 0 and rows["sftkit"]["peak_rss_mb"] > 0
    assert [r["steps"][0]["num_tokens"] for r in report["runs"]] == [report["runs"][0]["steps"][0]["num_tokens"]] * 2
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["summary"]["lora"]["rows"]["sftkit"]["tokens_per_second"] == rows["sftkit"]["tokens_per_second"]
    assert "| sftkit |" in (tmp_path / "doc.md").read_text()
    # the defaults part: one epoch each (32 and 8 examples at 4 per step), TRL keeping its bf16 autocast
    d = report["defaults"]
    assert set(d["summary"]) == {"mix", "uniform"} and d["matmul_peaks"]["gflops"]["bfloat16"] > 0
    for run in d["runs"]:
        assert len(run["steps"]) == {"mix": 8, "uniform": 2}[run["data"]] and run["process_seconds"] > 0
        assert run["gflops"] > 0
    for name in ("mix", "uniform"):
        rows = d["summary"][name]["rows"]
        assert rows["sftkit"]["precision"] == sftkit_precision() and rows["trl-default"]["speedup"] > 0
    assert "whole-process wall time vs trl-default" in (tmp_path / "doc.md").read_text()


def sftkit_precision() -> str:
    import torch

    from sftkit.training.precision import choose_precision

    return choose_precision("auto", torch.device("cpu")).name


@pytest.mark.slow
def test_gpu_script_dry_run(tmp_path):
    """The prepared GPU script end to end on CPU: bundle, package check, every contender of a pair in one worker
    process, figures, ratios, targets, results written after the pair."""
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh"), "--dry-run", "--methods", "lora", "--out",
                           str(tmp_path)], capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHON": sys.executable}, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    assert "torch " in proc.stdout and "GPU: none" in proc.stdout  # versions are printed before anything runs
    report = json.loads((tmp_path / "results.json").read_text())
    assert [(r["name"], r["method"]) for r in report["runs"]] == [
        ("sftkit", "lora"), ("sftkit-eager", "lora"), ("trl-default", "lora"), ("trl-padding-free", "lora"),
        ("trl-packing", "lora")]
    for run in report["runs"]:
        assert "error" not in run, run.get("error")
        assert run["figures"]["tokens_per_second"] > 0 and run["mfu"] is None  # no GPU peak on a CPU
        assert all(s["sum_squared_lengths"] >= s["num_tokens"] for s in run["steps"])
    assert report["runs"][0]["precision"] == "fp32" and report["runs"][0]["attention"] == "per-document SDPA"
    assert report["runs"][2]["figures"]["padding_fraction"] > 0 == report["runs"][0]["figures"]["padding_fraction"]
    ratios = report["summary"]["tiny-a lora"]["ratios"]
    assert ratios["trl-default"]["vs_trl_default"] == 1.0
    assert "| tiny-a | lora | sftkit |" in (tmp_path / "table.md").read_text()


def test_gpu_targets_from_recorded_runs():
    """The GPU targets' arithmetic on recorded numbers: ratios, memory, and the 1.7B full ~4k-token row."""
    from bench.gpu_report import summarise

    def run(name, rate, gpu_mb, tokens=1000, mfu=None):
        r = fake_run(name, "full", 0, rate, 100)
        r.update(shape="1.7B", peak_gpu_mb=gpu_mb, mfu=mfu)
        r["steps"][-1]["num_tokens"] = tokens
        return r

    runs = [run("sftkit", 50.0, 20_000), run("sftkit-4k", 60.0, 30_000, tokens=4200, mfu=0.47),
            run("trl-default", 20.0, 25_000), run("trl-padding-free", 45.0, 22_000),
            {"name": "trl-packing", "method": "full", "shape": "1.7B", "error": "skipped: the time budget ran out"}]
    s = summarise(runs)["1.7B full"]
    assert s["best_trl"] == "trl-padding-free"
    assert s["ratios"]["sftkit"]["vs_trl_default"] == pytest.approx(2.5)
    assert [(t["met"], round(t["value"], 3)) for t in s["targets"]] == [
        (True, 2.5), (False, round(50 / 45, 3)), (True, 0.8), (True, round(4200 / 4096, 3)), (True, 0.47)]
