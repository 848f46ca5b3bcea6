#!/usr/bin/env bash
# Issue 18's GPU checks as one script for the lent device machine (no network; its own Python with torch,
# pyarrow, pluggy, typer, rich, scipy, matplotlib, scikit-learn). Prepare and try it here first:
#
#   benchmarks/build_device_wheels.sh                       # -> .device-wheels/ (git-ignored)
#   # the CPU rehearsal: this machine's python3 lacks torch, so a folder of links to .venv's packages (leanrec's
#   # own left out) stands in for the device's site packages
#   mkdir -p /tmp/site && for e in .venv/lib/python3.11/site-packages/*; do case $(basename $e) in
#     leanrec*|_leanrec*|__editable__*|*.pth) ;; *) ln -sfn "$PWD/$e" /tmp/site/;; esac; done
#   EXTRA_SITE=/tmp/site DEVICE=cpu ROWS=3000 STEPS=3 BIG_ROWS=20000 OUT=/tmp/devcheck benchmarks/device_check.sh
#
# then on the device (the `run` tool, carrying .device-wheels): `OUT=$OUT benchmarks/device_check.sh`.
# Steps (each logged under $OUT; summary in $OUT/summary.md):
#   1. a virtual environment over the machine's site packages with the wheels (--no-deps --no-index);
#   2. every registered method for one epoch on the synthetic log (ROWS rows) with --device $DEVICE:
#      status, device, optimizer steps and test AUC per method (a method that fails is listed, the rest go on);
#   3. benchmarks/bench_train_step.py at Criteo shape on $DEVICE (dense Adam vs lazy Adam vs row-wise Adagrad);
#   4. DNN on a 1M-row synthetic log, one epoch, dense Adam and lazy Adam: end-to-end samples/s from the records.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/leanrec-device-check}
DEVICE=${DEVICE:-cuda}
ROWS=${ROWS:-20000}
STEPS=${STEPS:-50}
BIG_ROWS=${BIG_ROWS:-1000000}
WHEELS=${WHEELS:-.device-wheels}
PY=${PY:-python3}
mkdir -p "$OUT"
say() { echo "$@" | tee -a "$OUT/summary.md"; }
: > "$OUT/summary.md"

VENV="$OUT/venv"
if [[ ! -x $VENV/bin/leanrec ]]; then
  # without ensurepip (some distributions), the machine's own pip serves the venv through its site packages
  "$PY" -m venv --system-site-packages "$VENV" 2>/dev/null || { rm -rf "$VENV"; \
    "$PY" -m venv --system-site-packages --without-pip "$VENV"; } || { say "venv failed"; exit 1; }
  if [[ -n ${EXTRA_SITE:-} ]]; then   # the CPU rehearsal: torch & co. from a folder of links (see above)
    echo "$EXTRA_SITE" > "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz_extra.pth"
  fi
  "$VENV/bin/python" -m pip install -q --no-deps --no-index "$WHEELS"/*.whl > "$OUT/install.log" 2>&1 \
    || { say "installing the wheels failed: $OUT/install.log"; tail -20 "$OUT/install.log"; exit 1; }
fi
LR="$VENV/bin/leanrec"
"$VENV/bin/python" - <<'PY' | tee -a "$OUT/summary.md"
import torch
print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}"
      + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
PY
"$LR" plugins > "$OUT/plugins.log" 2>&1 || say "leanrec plugins reported a problem: $OUT/plugins.log"
METHODS=$("$LR" plugins --json | "$VENV/bin/python" -c \
  "import json,sys; print(' '.join(m for p in json.load(sys.stdin) for m in p['methods']))")
say "## 1 epoch of every method on $DEVICE (synthetic, $ROWS rows)"
# one process for all methods (CUDA starts once); a failing method's record says why and the grid goes on
margs=(); for m in $METHODS; do margs+=(-m "$m"); done
timeout 1200 "$LR" run -d synthetic --data synthetic.n_rows="$ROWS" "${margs[@]}" --seeds 1 --max-epochs 1 \
  --min-steps 10 --device "$DEVICE" --results-dir "$OUT/smoke" --no-progress > "$OUT/smoke.log" 2>&1
failed=$?
[[ $failed -eq 0 ]] || say "leanrec run exited $failed: $OUT/smoke.log"
"$VENV/bin/python" - "$OUT/smoke" <<'PY' | tee -a "$OUT/summary.md"
import json, sys
from pathlib import Path
print("\n| method | status | device | steps | test AUC |\n|---|---|---|---|---|")
for p in sorted(Path(sys.argv[1]).rglob("runs/**/*.json")):
    r = json.loads(p.read_text())
    steps = sum(s.get("steps", 0) for s in (r.get("training") or {}).values())
    dev = (r.get("environment") or {}).get("device", "?")
    auc = (r.get("metrics") or {}).get("auc")
    err = (r.get("error") or {}).get("message", "")[:80]
    print(f"| {r['variant']} | {r['status']} {err} | {dev} | {steps} | {auc if auc is None else round(auc, 4)} |")
PY

say "## Training step at Criteo shape on $DEVICE"
timeout 1200 "$VENV/bin/python" benchmarks/bench_train_step.py --device "$DEVICE" --steps "$STEPS" --repeats 3 \
  --out "$OUT/train_step" > "$OUT/train_step.log" 2>&1 && cat "$OUT/train_step.md" >> "$OUT/summary.md" \
  || say "bench_train_step failed: $OUT/train_step.log"

say "## DNN, one epoch on $BIG_ROWS synthetic rows, dense vs lazy vs deferred Adam ($DEVICE)"
for opt in adam lazy_adam deferred_adam; do
  timeout 1200 "$LR" run -d synthetic --data synthetic.n_rows="$BIG_ROWS" -m "dnn:embedding_optimizer=$opt" \
    --seeds 1 --max-epochs 1 --device "$DEVICE" --results-dir "$OUT/big" --no-progress > "$OUT/big-$opt.log" 2>&1 \
    || { say "dnn $opt failed: $OUT/big-$opt.log"; failed=1; }
done
"$VENV/bin/python" - "$OUT/big" <<'PY' | tee -a "$OUT/summary.md"
import json, sys
from pathlib import Path
for p in sorted(Path(sys.argv[1]).rglob("runs/**/*.json")):
    r = json.loads(p.read_text())
    t = (r.get("training") or {}).get("train", {})
    secs = (r.get("stage_times") or {}).get("train")
    rows = t.get("steps", 0) * (t.get("schedule") or {}).get("batch_size", 0)
    rate = f"{rows / secs:,.0f} samples/s" if secs else "?"
    print(f"* {r['variant']}: {r['status']}, {t.get('steps')} steps in {secs and round(secs, 1)} s ({rate}, "
          f"validation included), test AUC {(r.get('metrics') or {}).get('auc')}")
PY
[[ $failed -eq 0 ]]
