"""sftkit's acc / acc_norm on lm-eval-style JSONL equal lm-evaluation-harness's own numbers (same file, model).

lm-eval runs offline through the task YAML shipped in eval/lm_eval_task.yaml, pointed at a test file.
"""

import json
from pathlib import Path

import pytest
import yaml

lm_eval = pytest.importorskip("lm_eval", reason="lm-evaluation-harness is not installed: pip install -e '.[bench]'")

REPO = Path(__file__).resolve().parents[2]


def _parity_rows() -> list[dict]:
    rows = [json.loads(line) for line in (REPO / "eval" / "example_mc.jsonl").read_text().splitlines()]
    # boundary cases: trailing space / newline in the context, a context+question row, punctuation
    rows += [
        {"question": "Answer with a colour: ", "choices": ["red", "blue", "a shade of green"], "answer": 2},
        {"question": "Reply yes or no:\n", "choices": ["yes", "no"], "answer": 0},
        {"context": "Tom has 3 apples and eats one.", "question": "How many are left?",
         "choices": ["2", "3", "(two)"], "answer": 0},
        {"context": "It rained all day", "choices": [", so we stayed in.", "; the sun shone."], "answer": 0},
    ]
    return rows


def test_acc_and_acc_norm_equal_lm_eval_harness(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SFTKIT_HOME", str(tmp_path / "home"))
    data = tmp_path / "mc.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _parity_rows()))
    config = yaml.safe_load((REPO / "eval" / "lm_eval_task.yaml").read_text())
    config["dataset_kwargs"]["data_files"]["test"] = str(data)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "sftkit_mc.yaml").write_text(yaml.safe_dump(config))

    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    theirs = simple_evaluate(model="hf", model_args=f"pretrained={tiny_model_dir},dtype=float32",
                             tasks=["sftkit_mc"], task_manager=TaskManager(include_path=str(tmp_path / "tasks")),
                             device="cpu", batch_size=4, log_samples=True)

    from sftkit.eval.evaluator import evaluate
    from sftkit.eval.tasks import load_task

    from sftkit.eval.settings import EvalSettings

    ours = evaluate(str(tiny_model_dir), [load_task(str(data))], tmp_path / "out", EvalSettings(dtype="float32"),
                    use_cache=False)  # float32 like lm-eval's run above; `auto` picks bf16 on CPUs with it
    summary = ours["tasks"][str(data)]
    result = theirs["results"]["sftkit_mc"]
    assert summary["acc"]["n"] == len(_parity_rows())
    assert summary["acc"]["value"] == result["acc,none"]
    assert summary["acc_norm"]["value"] == result["acc_norm,none"]

    predictions = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    samples = sorted(theirs["samples"]["sftkit_mc"], key=lambda s: s["doc_id"])
    assert len(samples) == len(predictions) == len(_parity_rows())
    for ours_row, sample in zip(predictions, samples):
        assert ours_row["prompt"] == sample["arguments"][0][0]  # the exact context text
        assert [" " + c for c in ours_row["choices"]] == [a[1] for a in sample["arguments"]]
        their_lls = [r[0] for r in sample["filtered_resps"]]
        assert ours_row["choice_logprobs"] == pytest.approx(their_lls, abs=1e-4, rel=0)
        assert (ours_row["acc"], ours_row["acc_norm"]) == (sample["acc"], sample["acc_norm"])
