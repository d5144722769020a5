"""sftkit: supervised fine-tuning of open LLMs, with evidence."""

__version__ = "0.1.0"
