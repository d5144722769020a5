"""Data curation: validation, exact/near/semantic deduplication, quality filters, decontamination, PII and
selection to a budget, with every dropped row written to a rejects file with its reasons (`sftkit data curate`).
"""

from sftkit.curate.config import CurateConfig, load_curate_config
from sftkit.curate.pipeline import STAGES, curate, output_paths

__all__ = ["STAGES", "CurateConfig", "curate", "load_curate_config", "output_paths"]
