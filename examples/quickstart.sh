#!/usr/bin/env bash
# The quickstart that `make demo` runs: fetch a BIG-bench task, audit it, fine-tune the default model with
# LoRA, show validation loss before and after, and write the report (RUN/report.html, model cards). Re-running
# reuses the finished run.
set -euo pipefail
cd "$(dirname "$0")/.."
SFTKIT=.venv/bin/sftkit
RUN=runs/quickstart

$SFTKIT data fetch bigbench intent_recognition
$SFTKIT data inspect bigbench:intent_recognition --max-length 256 --examples 1

if [ -f "$RUN/summary.json" ]; then
  echo "$RUN is already trained (rm -rf $RUN to train again)"
else
  rm -rf "$RUN"
  $SFTKIT train examples/quickstart.yaml
fi

.venv/bin/python - "$RUN" <<'PY'
import json, sys
s = json.load(open(f"{sys.argv[1]}/summary.json"))
print(f"validation loss: before {s['initial_val_loss']:.4f} -> after {s['best_val_loss']:.4f} "
      f"(best at step {s['best_step']} of {s['steps']}; {s['train_tokens_per_second']:.0f} trained tokens/s, "
      f"{s['wall_seconds']:.0f} s)")
gain, retention = s.get("gain_over_prompting"), s.get("retention")
if gain:
    print(f"held-out accuracy gain over the best prompting baseline: {gain['abs']:+.3f} "
          f"(95% CI {gain['ci_low']:+.3f} .. {gain['ci_high']:+.3f})")
if retention is not None:
    print(f"general-suite retention (tuned / base, averaged over tasks): {retention:.3f}")
PY
# the report page (also written by `sftkit train`; written again here for runs trained before it existed)
$SFTKIT report "$RUN"
