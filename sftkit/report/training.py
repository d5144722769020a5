"""The training section: loss curves (raw, smoothed, validation) marked with the initial loss, the best step
(the weights that were written), early stopping and checkpoints; learning rate, gradient norm with the clip
line, and throughput."""

from __future__ import annotations

from sftkit.report.charts import MUTED, PALETTE, Mark, Series, line_chart
from sftkit.report.html import Html, join, note, section, tag


def curve(metrics: list[dict], key: str) -> list[tuple[float, float]]:
    """(step, value) for every row that has a number under `key`."""
    return [(float(r["step"]), float(r[key])) for r in metrics
            if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]


def smoothed(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Debiased exponential moving average (TensorBoard's smoothing) over a span of a tenth of the curve,
    between 2 and 50 points: enough to show the trend of a noisy per-step loss without hiding its turns."""
    span = min(50.0, max(2.0, len(points) / 10))
    weight = 1 - 2 / (span + 1)
    out, last, debias = [], 0.0, 0.0
    for x, y in points:
        last = weight * last + (1 - weight) * y
        debias = weight * debias + (1 - weight)
        out.append((x, last / debias))
    return out


def checkpoint_steps(config: dict, summary: dict) -> list[int]:
    """Steps a checkpoint was written at: every `save_every` steps and the early-stopping step."""
    train = config.get("train") or {}
    every, steps = int(train.get("save_every") or 0), int(summary.get("steps") or 0)
    out = list(range(every, steps + 1, every)) if every else []
    if summary.get("early_stopped") and summary.get("stopped_step") and summary["stopped_step"] not in out:
        out.append(summary["stopped_step"])
    return out


def loss_marks(run) -> list[Mark]:
    s = run.summary
    marks = []
    if s.get("initial_val_loss") is not None:
        marks.append(Mark("y", s["initial_val_loss"], f"initial val loss {s['initial_val_loss']:.3f}"))
    if s.get("best_step") is not None and s.get("best_val_loss") is not None:
        marks.append(Mark("x", s["best_step"], f"best (written) step {s['best_step']}", PALETTE[2]))
    if s.get("early_stopped"):
        marks.append(Mark("x", s["stopped_step"], f"early stop {s['stopped_step']}", PALETTE[4]))
    marks += [Mark("x", step, f"checkpoint {step}", MUTED, tick=True) for step in checkpoint_steps(run.config, s)]
    return marks


def training_section(run) -> Html:
    m = run.metrics
    if not m:
        return section("training", "Training", note("No metrics.jsonl in the run directory."))
    train_loss = curve(m, "train_loss")
    loss = line_chart("loss per trained token" if run.kind == "sft" else "preference loss", [
        Series("train loss", train_loss, "#9cc3ef", width=1.0),
        Series("train loss, smoothed", smoothed(train_loss), PALETTE[0], width=2.0),
        Series("validation loss", curve(m, "val_loss"), PALETTE[1], width=2.0, dots=True)], loss_marks(run),
        y_label="loss")
    charts = [loss]
    if run.kind == "dpo" and curve(m, "val_reward_accuracy"):
        charts.append(line_chart("validation reward accuracy", [
            Series("val reward accuracy", curve(m, "val_reward_accuracy"), PALETTE[1], dots=True),
            Series("train reward accuracy", smoothed(curve(m, "reward_accuracy")), PALETTE[0])]))
    charts.append(line_chart("learning rate", [Series("lr", curve(m, "lr"), PALETTE[3])]))
    clip = (run.config.get("train") or {}).get("max_grad_norm")
    charts.append(line_chart("gradient norm (before clipping)",
                             [Series("grad norm", curve(m, "grad_norm"), PALETTE[5])],
                             [Mark("y", float(clip), f"clip at {clip}", PALETTE[4])] if clip else []))
    throughput = "trained_tokens_per_second" if run.kind == "sft" else "pairs_per_second"
    charts.append(line_chart("throughput", [
        Series("tokens/s", curve(m, "tokens_per_second"), PALETTE[6]),
        Series(throughput.replace("_per_second", "/s").replace("_", " "), curve(m, throughput), PALETTE[2])]))
    s = run.summary
    facts = []
    if s:
        facts.append(f"{s.get('steps')} optimizer steps, {s.get('trained_tokens', 0):,} trained tokens, "
                     f"{s.get('train_tokens_per_second', 0):,.0f} trained tokens/s on average.")
        if s.get("early_stopped"):
            facts.append(f"Stopped early at step {s['stopped_step']}: the validation loss had not improved for "
                         f"{(run.config.get('train') or {}).get('patience')} evaluations.")
    else:
        facts.append("Training did not finish: there is no summary.json yet (the curves are what was logged).")
    return section("training", "Training", tag("p", " ".join(facts)), tag("div", join(charts), class_="charts"),
                   note("Markers: the dashed horizontal line is the validation loss before training; the green "
                        "line is the step whose weights were written (the best validation loss); triangles on "
                        "the axis are checkpoints."))
