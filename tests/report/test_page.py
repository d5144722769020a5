"""RUN/report.html as written at the end of `sftkit train`: self-contained, small, the same bytes when written
again, every expected chart, the run's own numbers, and text from predictions escaped."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sftkit.report.collect import collect_run
from sftkit.report.page import render_run, write_report
from tests.helpers import chart_titles, embedded

CHARTS = ("loss per trained token", "learning rate", "gradient norm (before clipping)", "throughput",
          "held-out test examples, 95% intervals", "gain of the fine-tune over the", "change per task",
          "safety before (grey) and after fine-tuning", "tokens per training example")


def test_training_writes_a_self_contained_page_that_is_rewritten_byte_for_byte(report_run):
    path = report_run / "report.html"
    page = path.read_text(encoding="utf-8")
    assert path.stat().st_size < 1_000_000
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<(img|link|iframe|object|embed)\b[^>]*(src|href)=\"(?!data:|#)", page)
    assert not re.search(r"<script(?![^>]*type=\"application/json\")", page)  # no executable script
    assert "url(" not in page and "@import" not in page
    before = path.read_bytes()
    assert write_report(report_run, report_run.parent / "again.html").read_bytes() == before


def test_page_has_every_chart_and_section(report_run):
    page = (report_run / "report.html").read_text(encoding="utf-8")
    titles = chart_titles(page)
    for expected in CHARTS:
        assert any(expected in t for t in titles), expected
    for anchor in ("verdict", "training", "prompting", "forgetting", "safety", "data", "examples", "cost", "config"):
        assert f'id="{anchor}"' in page
    assert "(model card: adapter/README.md)" in page  # training writes the cards before the page


def test_numbers_are_those_of_summary_and_comparison(report_run):
    page = (report_run / "report.html").read_text(encoding="utf-8")
    data = embedded(page)
    summary = json.loads((report_run / "summary.json").read_text())
    comparison = json.loads((report_run / "compare" / "comparison.json").read_text())
    safety = json.loads((report_run / "safety" / "safety.json").read_text())
    assert data["summary"] == summary and data["comparison"] == comparison and data["safety"] == safety
    gain = comparison["gain_over_prompting"]
    assert f"a gain of {gain['abs']:+.3f} (95% CI [{gain['ci_low']:+.3f}, {gain['ci_high']:+.3f}], paired)" in page
    for key, est in comparison["accuracy"].items():
        assert f"{est['value']:.3f} [{est['ci_low']:.3f}, {est['ci_high']:.3f}] n={est['n']}" in page, key
    mc = next(row for row in comparison["forgetting"]["tasks"].values() if row["metric"] == "acc")
    assert f'<td class="num">{mc["delta"]:+.3f}</td><td class="num">[{mc["delta_ci_low"]:+.3f}, ' \
           f'{mc["delta_ci_high"]:+.3f}]</td>' in page
    # the histogram's counts are the training examples the run trained on, re-tokenised from data/
    assert len(data["tokens"]["num_tokens"]) == summary["num_train_examples"]
    assert f"from {summary['initial_val_loss']:.4f} to {summary['best_val_loss']:.4f}" in page
    assert [r["step"] for r in data["metrics"]] == [json.loads(x)["step"] for x in
                                                   (report_run / "metrics.jsonl").read_text().splitlines()]


def test_verdict_says_beats_only_when_the_interval_is_above_zero(report_run):
    from sftkit.report.verdict import gain_claim

    comparison = json.loads((report_run / "compare" / "comparison.json").read_text())
    for low, high, opening, tone in ((0.01, 0.2, "Fine-tuning beats prompting", "good"),
                                     (-0.1, 0.2, "No clear winner", "neutral"),
                                     (-0.3, -0.02, "Prompting beats this fine-tune", "bad")):
        comparison["gain_over_prompting"].update(ci_low=low, ci_high=high)
        claim = gain_claim(comparison)
        assert claim.text.startswith(opening) and claim.tone == tone
        assert f"n = {comparison['test']['n']}" in claim.text and f"[{low:+.3f}, {high:+.3f}]" in claim.text


def test_prediction_text_renders_as_text(full_run):
    path = full_run / "compare" / "predictions.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    comparison = json.loads((full_run / "compare" / "comparison.json").read_text())
    metric, best = comparison["test"]["metric"], comparison["best_baseline"]
    test_spec = comparison["test"]["path"]
    tuned = next(r for r in rows if r["model"] == "tuned" and r["task"] == test_spec)
    base = next(r for r in rows if r["model"] == best and (r["source"], r["line"]) == (tuned["source"], tuned["line"]))
    tuned.update({"output": "<script>alert('tuned')</script>", metric: 1.0})
    base.update({"output": "</td></tr><b>base</b>", metric: 0.0})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    page = render_run(collect_run(full_run))
    assert "<script>alert" not in page and "<b>base</b>" not in page
    assert "&lt;script&gt;alert(&#x27;tuned&#x27;)&lt;/script&gt;" in page
    assert "&lt;/td&gt;&lt;/tr&gt;&lt;b&gt;base&lt;/b&gt;" in page
    assert "prefix_injection &lt;x&gt;" in page  # names from redteam.json too


def test_redteam_and_exports_are_shown_when_present(full_run):
    page = render_run(collect_run(full_run))
    assert any("red-team: non refusal rate per attack" in t for t in chart_titles(page))
    assert "0.900 [0.700, 1.000] n=10" in page and "+0.400 [+0.100, +0.700] n=10" in page
    assert "Significantly more successful than against the base model: prefix_injection &lt;x&gt; (+0.400)" in page
    assert "<td>checks.metadata</td>" not in page and "<td>metadata</td><td>passed</td>" in page
    assert "<td>weights.q8_0_bound</td><td>passed</td>" in page
    assert embedded(page)["redteam"]["any_attack"]["value"] == 0.9


def test_long_runs_stay_under_a_megabyte(full_run):
    """20,000 logged steps: curves are thinned to at most 600 points each, the embedded rows to 5,000."""
    run = collect_run(full_run)
    run.metrics = [{"step": i, "train_loss": 1 + 1 / (i + 1), "lr": 1e-3, "grad_norm": 0.5, "tokens_per_second": 1e4,
                    "trained_tokens_per_second": 5e3, **({"val_loss": 1.5} if i % 100 == 0 else {})}
                   for i in range(20000)]
    page = render_run(run)
    assert len(page.encode()) < 1_000_000
    assert len(embedded(page)["metrics"]) == 5000


def test_a_run_without_evaluations_says_how_to_get_them(report_run, tmp_path):
    import shutil

    run = tmp_path / "bare"
    shutil.copytree(report_run, run, ignore=shutil.ignore_patterns("compare", "safety", "checkpoints"))
    summary = json.loads((run / "summary.json").read_text())
    for key in ("safety", "gain_over_prompting", "retention"):
        summary.pop(key)
    (run / "summary.json").write_text(json.dumps(summary))
    page = render_run(collect_run(run))
    assert "Fine-tune or prompt was not measured: run `sftkit compare RUN`" in page
    assert "Not measured: `sftkit safety RUN --against BASE`" in page


def test_damaged_files_are_named_with_their_line(report_run, tmp_path):
    import shutil

    from sftkit.errors import UserError

    run = tmp_path / "damaged"
    shutil.copytree(report_run, run, ignore=shutil.ignore_patterns("checkpoints"))
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write("{not json\n")
    line = len((run / "metrics.jsonl").read_text().splitlines())
    with pytest.raises(UserError) as err:
        collect_run(run)
    assert err.value.format().startswith(f"{run / 'metrics.jsonl'}:{line}: not valid JSON")
    with pytest.raises(UserError, match="is not a run directory"):
        collect_run(tmp_path)


def test_dpo_writes_its_report_and_card(tmp_path, tiny_model_dir):
    from huggingface_hub import ModelCard

    from sftkit.recipes.dpo import train_dpo
    from tests.helpers import dpo_config as make_config

    config = make_config(tmp_path, tiny_model_dir, max_steps=3, eval_every=1)
    summary = train_dpo(config, quiet=True)
    run = Path(config.output_dir)
    page = (run / "report.html").read_text(encoding="utf-8")
    assert embedded(page)["kind"] == "dpo" and embedded(page)["summary"] == summary
    assert "validation reward accuracy" in chart_titles(page) and 'id="prompting"' not in page
    assert len(embedded(page)["tokens"]["num_tokens"]) == summary["num_train_pairs"]
    assert ModelCard.load(run / "adapter" / "README.md").data.tags == ["sftkit", "dpo", "lora"]
