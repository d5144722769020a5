"""Safety: refusal and over-refusal rates, HHH accuracy, before/after deltas (`run_safety`), and guardrails for
`generate`/`chat` (`sftkit.safety.guardrails`)."""

from sftkit.safety.evaluate import SafetySettings, run_safety, safety_after_training
from sftkit.safety.report import print_safety

__all__ = ["SafetySettings", "print_safety", "run_safety", "safety_after_training"]
