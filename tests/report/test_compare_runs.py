"""The comparison page of several runs and `sftkit report` on the command line."""

from __future__ import annotations

import json
import re
import shutil

import yaml

from sftkit.report.collect import collect_run
from sftkit.report.compare_runs import config_differences, write_comparison
from tests.helpers import chart_titles, embedded


def second_run(full_run, root, gain: float, learning_rate: float):
    """A copy of the run with another learning rate in its config and another gain in its comparison."""
    run = root / f"lr-{learning_rate}"
    shutil.copytree(full_run, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["train"]["learning_rate"] = learning_rate
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    comparison = json.loads((run / "compare" / "comparison.json").read_text())
    comparison["gain_over_prompting"].update({"abs": gain, "ci_low": gain - 0.1, "ci_high": gain + 0.1})
    (run / "compare" / "comparison.json").write_text(json.dumps(comparison))
    return run


def test_leaderboard_ranks_by_gain_and_shows_what_differs(full_run, tmp_path):
    runs = [second_run(full_run, tmp_path, 0.05, 3e-4), second_run(full_run, tmp_path, 0.25, 1e-4)]
    (runs[1] / "report.html").write_text("<!DOCTYPE html>")
    path = write_comparison(runs)
    assert path == tmp_path / "comparison.html"
    page = path.read_text()
    rows = re.findall(r"<tr( class=\"best\")?><td class=\"num\">(\d)</td><td>(.*?)</td><td>(.*?)</td>", page)
    assert [(r[1], r[3]) for r in rows] == [("1", "train.learning_rate=0.0001"), ("2", "train.learning_rate=0.0003")]
    assert rows[0][0] == ' class="best"' and rows[0][2] == '<a href="lr-0.0001/report.html">lr-0.0001</a>'
    assert "+0.250 [+0.150, +0.350]" in page and "Ranked first: lr-0.0001" in page
    assert chart_titles(page) == ["validation loss", "train loss, smoothed"]
    data = embedded(page, "sftkit-comparison-data")
    assert [r["run"] for r in data["runs"]] == ["lr-0.0001", "lr-0.0003"]
    assert data["runs"][0]["config_differences"] == {"train.learning_rate": 0.0001}


def test_config_differences_leave_out_the_output_dir(full_run, tmp_path):
    run = second_run(full_run, tmp_path, 0.1, 1e-4)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["output_dir"] = "elsewhere"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    diffs = config_differences([collect_run(full_run, with_tokens=False), collect_run(run, with_tokens=False)])
    old = yaml.safe_load((full_run / "config.yaml").read_text())["train"]["learning_rate"]
    assert diffs == [{"train.learning_rate": old}, {"train.learning_rate": 1e-4}]


def test_cli_reports_one_run_and_compares_a_directory_of_runs(full_run, tmp_path, run_cli):
    code, out, err = run_cli("report", str(full_run), "--no-model-cards")
    assert (code, out) == (0, f"report: {full_run / 'report.html'}\n")
    runs = tmp_path / "runs"
    runs.mkdir()
    for gain, lr in ((0.1, 1e-4), (0.2, 2e-4)):
        second_run(full_run, runs, gain, lr)
    code, out, err = run_cli("report", str(runs))
    assert (code, out) == (0, f"comparison: {runs / 'comparison.html'}\n")
    code, out, err = run_cli("report", *map(str, sorted(runs.iterdir())))  # `sftkit report runs/*`, page included
    assert (code, out) == (0, (f"passed over: {runs / 'comparison.html'} (a file, not a run directory)\n"
                              f"comparison: {runs / 'comparison.html'}\n"))
    code, out, _err = run_cli("report", str(runs / "lr-0.0001"), str(runs / "lr-0.0002"), "--output",
                             str(tmp_path / "two.html"))
    assert (code, out) == (0, f"comparison: {tmp_path / 'two.html'}\n")


def test_cli_bad_paths_are_one_line_and_exit_2(tmp_path, run_cli):
    code, out, err = run_cli("report", str(tmp_path / "missing"))
    assert code == 2 and err.strip() == f"error: {tmp_path / 'missing'} does not exist: check the path (pass the " \
                                        "output_dir of `sftkit train`)"
    (tmp_path / "empty").mkdir()
    code, _out, err = run_cli("report", str(tmp_path / "empty"))
    assert code == 2 and "is not a run directory and holds none" in err and len(err.strip().splitlines()) == 1


def test_python_api_returns_what_it_wrote(full_run):
    from sftkit import report

    result = report(full_run)
    assert result.kind == "run" and result.path == full_run / "report.html" and result.runs == [str(full_run)]
    assert result.model_cards == [full_run / "adapter" / "README.md", full_run / "export" / "gguf" / "README.md"]
