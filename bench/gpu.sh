#!/usr/bin/env bash
# sftkit vs TRL SFTTrainer on one GPU (SmolLM2-shaped 360M and 1.7B, random weights, bf16): tokens/s and MFU,
# full fine-tuning and LoRA, in under 5 minutes on one H100. `--dry-run` runs tiny shapes on CPU (tests use it).
#   bench/gpu.sh [--dry-run] [--shapes 360M,1.7B] [--methods full,lora] [--steps N] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
exec "$PYTHON" bench/gpu.py "$@"
