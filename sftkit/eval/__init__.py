"""Evaluation: generation, multiple-choice and perplexity tasks with bootstrap CIs; prompting-vs-tuning
comparison and the forgetting suite. `run_compare` and `print_comparison` are what the trainer calls."""

from sftkit.eval.compare import run_compare
from sftkit.eval.report import print_comparison

__all__ = ["run_compare", "print_comparison"]
