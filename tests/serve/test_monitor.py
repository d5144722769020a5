"""`sftkit monitor`: windows, rates and alerts from an audit log (rotated files included), against the rates
stored in the run's summary.json; the audit log rotates without losing a record."""

from __future__ import annotations

import json

import pytest

from sftkit.serve.audit import AuditLog, log_files
from sftkit.serve.monitor import Thresholds, read_records, summarize, wilson

HOUR = 3600.0


def record(t: float, refused: bool = False, guard: bool = False, pii: tuple = (), status: int = 200,
           length_far: bool = False) -> dict:
    answered = status == 200 and not guard
    return {"time": t, "request_id": f"r{t}", "status": status, "latency_s": 0.5, "prompt_tokens": 10,
            "completion_tokens": 4, "refused": [refused] if answered else [], "pii": [list(pii)] if answered else [],
            "guardrail": [{"where": "input", "rule": "r", "category": "S2"}] if guard else [],
            "drift": {"prompt_tokens": 10, "length_far": length_far}}


def write_log(path, records, max_bytes=10_000_000) -> None:
    log = AuditLog(path, max_bytes, 50, log_content=False)
    for r in records:
        log._logger.info(json.dumps(r))  # the records' own times, not now
    log.close()


def quiet_then_busy() -> list[dict]:
    """Hour 1: 100 requests, 5 refusals, 2 blocked. Hour 2: 100 requests, 30 refusals, 10 blocked, one PII,
    3 errors, 4 prompts far by length."""
    first = [record(i, refused=i < 5, guard=5 <= i < 7) for i in range(100)]
    second = [record(HOUR + i, refused=i < 30, guard=30 <= i < 40, pii=("email",) if i == 50 else (),
                     status=500 if 60 <= i < 63 else 200, length_far=70 <= i < 74) for i in range(100)]
    return first + second


def test_wilson_interval_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for k, n in [(0, 10), (5, 10), (30, 100), (98, 98), (3, 1000)]:
        expected = stats.binomtest(k, n).proportion_ci(method="wilson")
        assert wilson(k, n) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_rates_per_window_and_the_alerts_that_fire(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"safety": {"over_refusal_rate": 0.05}}))
    write_log(tmp_path / "audit.jsonl", quiet_then_busy())
    summary = summarize(tmp_path / "audit.jsonl", run, HOUR)
    first, second = summary["windows"]
    assert (first["requests"], first["answered"], first["replies"], first["refused"], first["guardrail"]) == \
        (100, 100, 98, 5, 2)
    assert (second["errors"], second["replies"], second["refused"], second["pii"], second["drift_length_far"]) == \
        (3, 87, 30, 1, 4)
    assert second["refusal_rate"] == 30 / 87 and second["guardrail_rate"] == 10 / 97
    assert summary["baselines"]["refusal_rate"] == {"rate": 0.05, "source": "run summary.json (safety evaluation)"}
    assert summary["baselines"]["guardrail_rate"]["rate"] == 2 / 100
    fired = {(a["window_start"], a["rate"]) for a in summary["alerts"]}
    # refusals: 30/87 is surely above 2 x 0.05; guardrail: 10/97, lower bound 0.057 > 2 x 0.02; one PII reply;
    # errors 3/100 (lower bound 0.010) are not surely above 5%; drift 4/100 (lower bound 0.016) not above 2 x 2%
    assert fired == {(HOUR, "refusal_rate"), (HOUR, "guardrail_rate"), (HOUR, "pii_rate")}
    assert summary["total"]["requests"] == 200 and summary["unreadable_lines"] == []
    looser = summarize(tmp_path / "audit.jsonl", run, HOUR, Thresholds(factor=4.0, max_pii_rate=0.05))
    # refusal lower bound 0.253 > 4 x 0.05; guardrail 0.057 < 4 x 0.02; PII 1/87 < 0.05
    assert {a["rate"] for a in looser["alerts"]} == {"refusal_rate"}


def test_rotated_logs_are_read_whole_and_in_order(tmp_path):
    records = quiet_then_busy()
    write_log(tmp_path / "audit.jsonl", records, max_bytes=10_000)
    files = log_files(tmp_path / "audit.jsonl")
    assert len(files) > 3 and files[-1].name == "audit.jsonl"
    read, bad = read_records(tmp_path / "audit.jsonl")
    assert [r["request_id"] for r in read] == [r["request_id"] for r in records] and bad == []


def test_the_monitor_command(tmp_path, run_cli):
    run = tmp_path / "run"
    (run / "serve").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"safety": {"over_refusal_rate": 0.05}}))
    write_log(run / "serve" / "audit.jsonl", quiet_then_busy())
    with (run / "serve" / "audit.jsonl").open("a") as handle:
        handle.write("not json\n")
    code, out, err = run_cli("monitor", str(run), "--window", "1h", "--json")
    assert code == 0
    summary = json.loads(out)
    assert len(summary["windows"]) == 2 and summary["unreadable_lines"] == [f"{run}/serve/audit.jsonl:201"]
    code, out, _ = run_cli("monitor", str(run / "serve" / "audit.jsonl"), "--run", str(run), "--fail-on-alert")
    assert code == 1 and out.count("ALERT") == 3
    code, _, err = run_cli("monitor", str(run), "--window", "soon")
    assert code == 2 and "--window 'soon'" in err
