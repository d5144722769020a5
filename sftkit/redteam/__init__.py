"""Red-teaming: attack families over harmful seeds, success rates with intervals, before and after fine-tuning
(`run_redteam`; `sftkit redteam`)."""

from sftkit.redteam.evaluate import RedteamSettings, run_redteam
from sftkit.redteam.report import print_redteam

__all__ = ["RedteamSettings", "print_redteam", "run_redteam"]
