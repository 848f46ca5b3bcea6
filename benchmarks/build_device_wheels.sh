#!/usr/bin/env bash
# Wheels for the GPU machine (issue 18; it has no network): leanrec (abi3, release build), every plugin, and
# the pure-Python dependencies that machine's Python lacks (tomli-w, optuna's tree for `leanrec tune` is not
# needed there). Writes .device-wheels/ (git-ignored); carry it to the device and run
# benchmarks/device_check.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=.device-wheels
rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
"$PY" -m maturin build --release -q -o "$OUT.tmp"
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$OUT.tmp" plugins/*/
"$PY" -m pip download -q --no-deps --only-binary=:all: -d "$OUT.tmp" "tomli-w>=1.0"
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
ls -l "$OUT"
