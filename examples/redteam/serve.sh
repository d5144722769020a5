#!/usr/bin/env bash
# The last step of the red-teaming demonstration (docs/redteam.md): the refusal model served with guardrails
# on, attacked through its OpenAI-compatible endpoint, against the same model attacked locally without them
# (paired deltas on the same seeds and attacks).
# Needs `sftkit serve` (the serving issue); adjust SERVE_FLAGS to its guardrail options if they differ.
set -euo pipefail
OUT=${OUT:-/tmp/i14}
PY=${PY:-python}
PORT=${PORT:-8000}
MODEL=${MODEL:-$OUT/refusal/merged}
SERVE_FLAGS=${SERVE_FLAGS:---guard-blocklist default}
export OMP_NUM_THREADS=${THREADS:-1}

# shellcheck disable=SC2086
$PY -m sftkit.cli serve "$MODEL" --port "$PORT" $SERVE_FLAGS > "$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 120); do curl -fs "http://127.0.0.1:$PORT/v1/models" > /dev/null && break; sleep 1; done
$PY -m sftkit.cli redteam --endpoint "http://127.0.0.1:$PORT/v1" --against "$MODEL" --save-replies \
  --output "$OUT/rt_served_guarded"
