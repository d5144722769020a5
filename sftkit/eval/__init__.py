"""Evaluation: generation, multiple-choice and perplexity tasks with bootstrap CIs (evaluator.py), the
prompting-vs-tuning comparison (compare.py) and the forgetting suite (suite.py); every default in settings.py."""
