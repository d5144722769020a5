from sftkit.eval.generation import generation_predictions
from sftkit.eval.metrics import parse_extract
from sftkit.eval.tasks import GenerationItem


def test_generation_predictions_score_and_record_each_example():
    items = [GenerationItem([{"role": "user", "content": "q1"}], ["Paris"], "f.jsonl", 3),
             GenerationItem([{"role": "user", "content": "q2"}], ["4", "four"], "f.jsonl", 4)]
    outputs = ["Answer: Paris.\nMore text", "I think five"]
    values, rows = generation_predictions(items, ["P1", "P2"], outputs, parse_extract(r"regex:Answer: (\w+)"))
    assert values["exact_match"] == [1.0, 0.0]
    assert values["contains"] == [1.0, 0.0]
    assert rows[0] == {"source": "f.jsonl", "line": 3, "prompt": "P1", "output": outputs[0], "reference": "Paris",
                       "exact_match": 1.0, "normalized_exact_match": 1.0, "contains": 1.0, "token_f1": 1.0,
                       "extracted": "Paris"}
    assert rows[1]["extracted"] is None and rows[1]["references"] == ["4", "four"]
