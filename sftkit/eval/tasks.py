"""Evaluation tasks from a spec: data files (generation), BIG-bench tasks, lm-eval-style multiple-choice JSONL, text.

Specs:
  `bigbench:NAME` or a BIG-bench `task.json` path: multiple choice when every example has `target_scores`
      (prompt and choices joined as BIG-bench does), else generation scored against any `target`.
  `FILE.jsonl` whose rows have `choices` and `answer`: multiple choice, joined as lm-evaluation-harness does.
  `perplexity:fables` or `perplexity:FILE` (.txt, blank-line separated; or .jsonl with `text`): perplexity.
  any other data file, directory or hub id `sftkit data inspect` reads: generation; the last assistant turn
      is the reference, the turns before it are the prompt.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from sftkit.errors import UserError

FABLES_TASK = "understanding_fables"
_FABLE_QUESTION = re.compile(r"\s*What is the moral of this story\?\s*$")
LM_EVAL_DELIMITER = " "  # lm-evaluation-harness's default `target_delimiter`


@dataclass
class ChoiceItem:
    """One question. Choice i is scored as the text `context + delimiter + choices[i]`, which the task's format
    defines (tokenised by lm-eval's rule, `sftkit.eval.choice.encode_pair`)."""

    context: str
    choices: list[str]
    correct: list[int]
    source: str
    line: int
    delimiter: str = LM_EVAL_DELIMITER


@dataclass
class GenerationItem:
    messages: list[dict]  # the prompt: every turn before the reference
    references: list[str]
    source: str
    line: int


@dataclass
class TextItem:
    text: str
    source: str
    line: int


@dataclass
class Task:
    """What one evaluation runs on. `kind` is choice, generation or perplexity."""

    name: str
    kind: str
    items: list
    headline: str | None = None  # None for generation: the user's --metric decides
    num_available: int = 0
    skipped: Counter = field(default_factory=Counter)
    shots: int = 0

    def fingerprint(self) -> str:
        """Hash of exactly what is evaluated (items after subsampling and few-shot expansion)."""
        payload = json.dumps([self.kind, self.shots, [asdict(i) for i in self.items]], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def info(self) -> dict:
        return {"kind": self.kind, "num_examples": len(self.items), "num_available": self.num_available,
                "skipped": dict(self.skipped), "shots": self.shots}


def load_task(spec: str, max_examples: int | None = None, seed: int = 1234, on_bad_row: str = "error") -> Task:
    """Read a task spec (see the module docstring); keep a seeded subsample of at most `max_examples` items."""
    if spec.startswith("perplexity:"):
        task = _text_task(spec)
    elif spec.startswith("bigbench:"):
        from sftkit.data.bigbench import load_task as load_bigbench

        task = _bigbench_task(spec, load_bigbench(spec.split(":", 1)[1]))
    elif spec.endswith(".json") and Path(spec).is_file() and _is_bigbench_file(Path(spec)):
        task = _bigbench_task(spec, [(Path(spec), json.loads(Path(spec).read_text(encoding="utf-8")))])
    elif spec.endswith(".jsonl") and Path(spec).is_file() and _first_row_has(Path(spec), "choices"):
        task = _lm_eval_task(spec, on_bad_row)
    else:
        task = _conversation_task(spec, on_bad_row)
    task.num_available = len(task.items)
    if max_examples is not None and len(task.items) > max_examples:
        keep = sorted(random.Random(seed).sample(range(len(task.items)), max_examples))
        task.items = [task.items[i] for i in keep]
    return task


def _is_bigbench_file(path: Path) -> bool:
    try:
        return isinstance(data := json.loads(path.read_text(encoding="utf-8")), dict) and "examples" in data
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _first_row_has(path: Path, key: str) -> bool:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(row, dict) and key in row
    return False


def bigbench_choice_item(task: dict, example: dict, source: str, line: int) -> ChoiceItem:
    """A BIG-bench multiple-choice example as scored by BIG-bench (`sftkit.data.bigbench.choice_prompt`): the
    whitespace rule puts the single space into the context, so the delimiter is empty."""
    from sftkit.data.bigbench import choice_prompt

    context, choices, correct = choice_prompt(task, example)
    return ChoiceItem(context, choices, correct, source, line, delimiter="")


def _bigbench_task(spec: str, files: list[tuple[Path, dict]]) -> Task:
    from sftkit.data.bigbench import chat_prompt

    examples = [(path, data, i, ex) for path, data in files for i, ex in enumerate(data.get("examples") or [], 1)]
    if not examples:
        raise UserError("BIG-bench task has no examples", spec)
    if all(isinstance(ex.get("target_scores"), dict) and ex["target_scores"] for _, _, _, ex in examples):
        task = Task(spec, "choice", [], headline="acc")
        for path, data, line, ex in examples:
            item = bigbench_choice_item(data, ex, str(path), line)
            if all(item.choices):
                task.items.append(item)
            else:  # scored as no tokens, an empty choice would always win
                task.skipped["empty_choice"] += 1
        return _warn_skipped(spec, task, "an empty choice")
    task = Task(spec, "generation", [], headline="exact_match")
    for path, data, line, ex in examples:
        target = ex.get("target")
        targets = [target] if isinstance(target, str) else list(target or [])
        if not targets:
            task.skipped["no_target"] += 1
            continue
        extra = {k: data.get(k) for k in ("task_prefix", "example_input_prefix")}
        prompt = [{"role": "user", "content": chat_prompt({"input": ex["input"]}, extra)}]
        task.items.append(GenerationItem(prompt, [str(t) for t in targets], str(path), line))
    return _warn_skipped(spec, task, "neither target nor target_scores")


def _warn_skipped(spec: str, task: Task, why: str) -> Task:
    if task.skipped:
        warnings.warn(f"{spec}: skipped {dict(task.skipped)} examples with {why}", stacklevel=3)
    if not task.items:
        raise UserError(f"BIG-bench task has no usable examples (skipped: {dict(task.skipped)})", spec)
    return task


def _answer_index(answer, choices: list[str]) -> int | None:
    """lm-evaluation-harness's reading of `answer`: an index (int or digit string), else a choice's text."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, int) or (isinstance(answer, str) and answer.isdigit()):
        index = int(answer)
        return index if 0 <= index < len(choices) else None
    return choices.index(answer) if isinstance(answer, str) and answer in choices else None


def lm_eval_context(row: dict) -> str | None:
    """The prompt text of an lm-eval-style row: `question`, else `context`, or `context\\nquestion` if both."""
    question, context = row.get("question"), row.get("context")
    if isinstance(question, str) and isinstance(context, str):
        return context + "\n" + question
    return question if isinstance(question, str) else context if isinstance(context, str) else None


def _lm_eval_task(spec: str, on_bad_row: str) -> Task:
    from sftkit.data.readers import iter_rows
    from sftkit.data.rows import BadRow

    task = Task(spec, "choice", [], headline="acc")
    for row in iter_rows(spec):
        if isinstance(row, BadRow):
            problem, reason, line = row.message, row.reason, row.line
        else:
            data, line = row.data, row.line
            context, choices = lm_eval_context(data), data.get("choices")
            ok_choices = isinstance(choices, list) and len(choices) >= 2 and all(
                isinstance(c, str) and c for c in choices)
            index = _answer_index(data.get("answer"), choices) if ok_choices else None
            if context is None:
                problem, reason = "needs a string `question` (or `context`)", "missing_field"
            elif not ok_choices:
                problem, reason = "`choices` must be a list of at least two non-empty strings", "bad_choices"
            elif index is None:
                problem, reason = (f"`answer` {data.get('answer')!r} is neither an index below {len(choices)} nor "
                                   "one of the choices"), "bad_answer"
            else:
                task.items.append(ChoiceItem(context, list(choices), [index], spec, line))
                continue
        if on_bad_row == "error":
            raise UserError(problem + " (or run with --skip-bad-rows)", spec, line)
        task.skipped[reason] += 1
    if not task.items:
        raise UserError(f"no usable multiple-choice rows (skipped: {dict(task.skipped)})", spec)
    return task


def _conversation_task(spec: str, on_bad_row: str) -> Task:
    from sftkit.data.dataset import load_conversations

    examples, report = load_conversations(spec, on_bad_row=on_bad_row)
    items = []
    for ex in examples:
        # rows written by `sftkit train` into RUN/data/*.jsonl keep the original source and line
        source = str(ex.raw.get("source", ex.source)) if isinstance(ex.raw, dict) else ex.source
        line = ex.raw.get("line", ex.line) if isinstance(ex.raw, dict) else ex.line
        items.append(GenerationItem(ex.messages[:-1], [ex.messages[-1]["content"]], source, int(line)))
    return Task(spec, "generation", items, skipped=Counter(report.skipped))


def _text_task(spec: str) -> Task:
    target = spec.split(":", 1)[1]
    if target == "fables":
        from sftkit.data.bigbench import load_task as load_bigbench

        items = [TextItem(_FABLE_QUESTION.sub("", ex["input"]), str(path), i)
                 for path, data in load_bigbench(FABLES_TASK) for i, ex in enumerate(data["examples"], 1)]
        return Task(spec, "perplexity", items, headline="perplexity")
    path = Path(target).expanduser()
    if not path.is_file():
        raise UserError("perplexity text not found: use perplexity:fables or perplexity:FILE (.txt or .jsonl "
                        "with a `text` field)", target)
    items = []
    if path.suffix == ".jsonl":
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                    raise UserError("each line needs a string `text` field", str(path), line_no)
                items.append(TextItem(row["text"], str(path), line_no))
    else:
        line_no = 1
        for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
            if block.strip():
                items.append(TextItem(block.strip(), str(path), line_no))
            line_no += block.count("\n") + 2
    if not items:
        raise UserError("no text in the file", str(path))
    return Task(spec, "perplexity", items, headline="perplexity")


def add_shots(task: Task, pool: list[GenerationItem], shots: int, seed: int = 1234) -> Task:
    """The same task with `shots` pool examples before each prompt, as earlier user/assistant turns.

    Each item gets its own seeded draw. Pool examples whose prompt or answer equals a test item's prompt are
    removed first, so a test example never appears in a prompt, not even as a duplicate in the pool.
    """
    if task.kind != "generation":
        raise UserError(f"{task.name}: few-shot prompting applies to generation tasks only")
    if shots == 0:
        return task
    test_prompts = {json.dumps(item.messages, sort_keys=True) for item in task.items}
    clean = [p for p in pool if json.dumps(p.messages, sort_keys=True) not in test_prompts]
    if len(clean) < shots:
        raise UserError(f"few-shot baseline needs {shots} training examples but only {len(clean)} are usable "
                        "(not in the test set); lower --shots")
    items = []
    for index, item in enumerate(task.items):
        turns = []
        for shot in random.Random(seed * 1_000_003 + index).sample(clean, shots):
            turns += [m for m in shot.messages if m["role"] != "system"]
            turns.append({"role": "assistant", "content": shot.references[0]})
        system = [m for m in item.messages if m["role"] == "system"]
        rest = [m for m in item.messages if m["role"] != "system"]
        items.append(replace(item, messages=system + turns + rest))
    return replace(task, items=items, shots=shots, name=f"{task.name} ({shots}-shot)")
