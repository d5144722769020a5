#!/usr/bin/env bash
# The last step of the red-teaming demonstration (docs/redteam.md): the refusal model served by `sftkit serve`
# with the shipped guardrail blocklist on, attacked through its OpenAI-compatible endpoint, against the same
# model attacked locally without it (paired deltas on the same seeds and attacks). The attacks are demo.sh's
# minus `prefill`, which an endpoint cannot take. SERVE_CWD runs the server from another checkout; ATTACKS and
# RT_ARGS (e.g. --max-seeds 60) size it.
set -euo pipefail
OUT=${OUT:-/tmp/i14}
PY=${PY:-python}
PORT=${PORT:-8000}
THREADS=${THREADS:-1}
MODEL=${MODEL:-$OUT/refusal/merged}
SERVE_CWD=${SERVE_CWD:-.}
SERVE_FLAGS=${SERVE_FLAGS:---guard-blocklist default --dtype fp32}
ATTACKS=${ATTACKS:-direct,past_tense,fabricated_turn,refusal_suppression}
read -r -a RT_EXTRA <<< "${RT_ARGS:-}"
export OMP_NUM_THREADS=$THREADS

# shellcheck disable=SC2086
(cd "$SERVE_CWD" && exec $PY -m sftkit.cli serve "$MODEL" --port "$PORT" --num-threads "$THREADS" $SERVE_FLAGS) \
  > "$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 300); do curl -fs "http://127.0.0.1:$PORT/v1/models" > /dev/null && break; sleep 1; done
$PY -m sftkit.cli redteam --endpoint "http://127.0.0.1:$PORT/v1" --against "$MODEL" --attacks "$ATTACKS" \
  --num-threads "$THREADS" --save-replies --output "$OUT/rt_served_guarded" "${RT_EXTRA[@]}"
