"""Scoring of generation tasks: the answer extracted from each reply and every generation metric against the
references. Replies come from `sftkit.generation.generate`, the path `sftkit generate` and `chat` use too.
"""

from __future__ import annotations

import re

from sftkit.eval.metrics import GENERATION_METRICS, extract_answer, score_answer
from sftkit.eval.tasks import GenerationItem


def generation_predictions(items: list[GenerationItem], prompts: list[str], outputs: list[str],
                           extract: str | re.Pattern | None) -> tuple[dict, list[dict]]:
    """Per-example values of every generation metric (best over references) and the prediction rows."""
    values = {name: [] for name in GENERATION_METRICS}
    rows = []
    for item, prompt, output in zip(items, prompts, outputs):
        answer = extract_answer(output, extract)
        scores = score_answer("" if answer is None else answer, item.references)
        for name in GENERATION_METRICS:
            values[name].append(scores[name])
        row = {"source": item.source, "line": item.line, "prompt": prompt, "output": output,
               "reference": item.references[0], **scores}
        if len(item.references) > 1:
            row["references"] = item.references
        if extract is not None:
            row["extracted"] = answer
        rows.append(row)
    return values, rows
