"""Multiple-choice scoring on the real model: `sftkit eval` predictions against plain transformers.

Runs `sftkit eval --model MODEL --task TASK --no-cache` (default: the default model on
bigbench:physical_intuition, all 81 questions), then for every prediction row recomputes each choice's
log-probability by hand: the tokens of `prompt + delimiter + choice` (for BIG-bench: the output prefix, one
space, the choice), one full forward pass of the same weights in float64, log-softmax, the sum over the tokens
after those of the prompt without its trailing whitespace. Exits 1 if any recorded value is off by more than
the float32 rounding bound below.

    python bench/choice_check.py [--model default] [--task bigbench:physical_intuition] [--max-examples N]

MODEL is a base model (`default`, a directory or a hub id). The first row is printed with its tokens and
log-probabilities, next to `prompt + " " + choice`: the 0.1 scoring of prompts that end with a space (`\nA: `),
which put two spaces before the choice.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

UNIT_ROUNDOFF_FP32 = 2.0 ** -24


def fp32_tolerance(config, max_abs_logit: float, num_tokens: int) -> float:
    """Bound on |fp32 - exact| for a sum of `num_tokens` log-probabilities: each logit carries a relative
    rounding error of about num_layers * sqrt(hidden_size) * u (one random-walk dot product per layer), and a
    log-probability (logit - logsumexp) at most twice the absolute error of the largest logit."""
    per_logit = config.num_hidden_layers * math.sqrt(config.hidden_size) * UNIT_ROUNDOFF_FP32 * max_abs_logit
    return num_tokens * 2 * per_logit


class PlainScorer:
    """The reference: a float64 copy of the model, one unbatched forward pass per text, no cache."""

    def __init__(self, model_dir: str):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64).eval()

    @torch.no_grad()
    def score(self, prompt: str, text: str) -> dict:
        """log p(tokens of `text` after those of `prompt.rstrip()`), the tokens, and the fp32 tolerance."""
        ctx_ids = self.tokenizer(prompt.rstrip()).input_ids
        ids = self.tokenizer(text).input_ids
        if ids[:len(ctx_ids)] != ctx_ids or len(ids) == len(ctx_ids):
            raise AssertionError(f"{text!r}: the prompt's tokens are not a prefix of the text's")
        logits = self.model(torch.tensor([ids])).logits[0]
        logprobs = torch.log_softmax(logits, dim=-1)
        positions = range(len(ctx_ids), len(ids))
        return {"logprob": sum(logprobs[i - 1, ids[i]].item() for i in positions),
                "tokens": self.tokenizer.convert_ids_to_tokens(ids[len(ctx_ids):]),
                "tolerance": fp32_tolerance(self.model.config, logits.abs().max().item(), len(positions))}


def check_rows(scorer: PlainScorer, rows: list[dict]) -> dict:
    """Compare every choice of every row; returns counts, the largest error and its tolerance, the failures."""
    failures, worst = [], (0.0, 0.0)
    for row in rows:
        for choice, recorded in zip(row["choices"], row["choice_logprobs"]):
            ref = scorer.score(row["prompt"], row["prompt"] + row["delimiter"] + choice)
            error = abs(recorded - ref["logprob"])
            worst = max(worst, (error, ref["tolerance"]))
            if error > ref["tolerance"]:
                failures.append({"line": row["line"], "choice": choice, "recorded": recorded, **ref})
    return {"num_rows": len(rows), "num_choices": sum(len(r["choices"]) for r in rows), "max_abs_error": worst[0],
            "its_tolerance": worst[1], "failures": failures}


def run_eval(model: str, task: str, max_examples: int | None, output: Path) -> list[dict]:
    # float32 because the reference is plain transformers in float32: the check is about which tokens are
    # scored, and dtype auto (bfloat16 on CPUs with AVX512-BF16/AMX) moves each log-prob by ~0.1
    command = [sys.executable, "-m", "sftkit.cli", "eval", "--model", model, "--task", task, "--no-cache",
               "--dtype", "float32", "--output", str(output)] + (["--max-examples", str(max_examples)] if max_examples else [])
    subprocess.run(command, check=True)
    return [json.loads(line) for line in (output / "predictions.jsonl").read_text().splitlines()]


def _show_first(scorer: PlainScorer, row: dict) -> None:
    print(f"first example (line {row['line']}), prompt ends {row['prompt'][-12:]!r}, delimiter {row['delimiter']!r}")
    for choice, recorded in zip(row["choices"], row["choice_logprobs"]):
        new = scorer.score(row["prompt"], row["prompt"] + row["delimiter"] + choice)
        old = scorer.score(row["prompt"], row["prompt"] + " " + choice)
        print(f"  {choice!r}: sftkit {recorded:.6f}, plain transformers {new['logprob']:.6f} over {new['tokens']}; "
              f"prompt + ' ' + choice {old['logprob']:.6f} over {old['tokens']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--task", default="bigbench:physical_intuition")
    parser.add_argument("--max-examples", type=int, default=None)
    args = parser.parse_args(argv)
    from sftkit.models import resolve_model_path

    with tempfile.TemporaryDirectory() as tmp:
        rows = run_eval(args.model, args.task, args.max_examples, Path(tmp))
    scorer = PlainScorer(str(resolve_model_path(args.model)))
    _show_first(scorer, rows[0])
    result = check_rows(scorer, rows)
    print(json.dumps({k: v for k, v in result.items() if k != "failures"}))
    for failure in result["failures"]:
        print("MISMATCH", json.dumps(failure))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
