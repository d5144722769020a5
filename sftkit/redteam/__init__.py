"""Red-teaming: attack families over harmful seeds, success rates with intervals, before and after fine-tuning
(`run_redteam`; `sftkit redteam`). Importing it loads no model code: torch and transformers load when a target
or scorer first needs them."""

from sftkit.redteam.evaluate import redteam_after_training, run_redteam
from sftkit.redteam.report import print_redteam
from sftkit.redteam.settings import RedteamSettings

__all__ = ["RedteamSettings", "print_redteam", "redteam_after_training", "run_redteam"]
