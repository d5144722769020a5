"""Training recipes: each a config beside its recipe (sft_config.py + sft.py, dpo_config.py + dpo.py)."""
