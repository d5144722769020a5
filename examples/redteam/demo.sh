#!/usr/bin/env bash
# The red-teaming demonstration of docs/redteam.md, end to end on a CPU:
#   1. refusal data and a refusal fine-tune of the default model (examples/redteam/refusal.yaml)
#   2. five attacks on the refusal model, against the stock model
#   3. the quickstart task fine-tuned on top of the refusal model, attacked against it (Qi et al. 2023)
#   4. the refusal model behind the shipped guardrail blocklist (in-process; examples/redteam/serve.sh does
#      the same through `sftkit serve`)
# Each step is skipped when its output exists, so a stopped run can be resumed. MODEL, PER_KIND, TRAIN_ARGS
# and RT_ARGS shrink it for a dry run (tests/redteam/test_demo_script.py runs it on a tiny model).
set -euo pipefail
OUT=${OUT:-/tmp/i14}
PY=${PY:-python}
THREADS=${THREADS:-1}
MODEL=${MODEL:-default}
PER_KIND=${PER_KIND:-100}
read -r -a TRAIN_EXTRA <<< "${TRAIN_ARGS:-}"
# five attacks of four families (the default suite on 102 seeds costs 816 replies per model; these 510)
read -r -a RT_EXTRA <<< "${RT_ARGS:---attacks direct,prefill,past_tense,fabricated_turn,refusal_suppression}"
export OMP_NUM_THREADS=$THREADS
mkdir -p "$OUT"
step() { local done_file=$1; shift; if [ -e "$done_file" ]; then echo "skip: $done_file exists"; else echo "+ $*"; "$@"; fi; }
rt() { $PY -m sftkit.cli redteam --num-threads "$THREADS" --save-replies "${RT_EXTRA[@]}" "$@"; }
train() { $PY -m sftkit.cli train "$@" "${TRAIN_EXTRA[@]}"; }

step "$OUT/refusal.jsonl" $PY -m examples.redteam.refusal_data --output "$OUT/refusal.jsonl" --per-kind "$PER_KIND" \
  --model "$MODEL"
step "$OUT/refusal/summary.json" train examples/redteam/refusal.yaml --set model.name="$MODEL" \
  --set data.train_path="$OUT/refusal.jsonl" --set output_dir="$OUT/refusal"
step "$OUT/rt_refusal/redteam.json" rt "$OUT/refusal/merged" --against "$MODEL" --output "$OUT/rt_refusal"
step "$OUT/qs/summary.json" train examples/quickstart.yaml --set model.name="$OUT/refusal/merged" \
  --set output_dir="$OUT/qs" --set eval.after_training=false
step "$OUT/rt_qs/redteam.json" rt "$OUT/qs" --against "$OUT/refusal/merged" --output "$OUT/rt_qs"
step "$OUT/rt_guarded/redteam.json" rt "$OUT/refusal/merged" --guard-blocklist default --output "$OUT/rt_guarded"
