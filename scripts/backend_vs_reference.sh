#!/usr/bin/env bash
# Whole-model check of an optimized backend against the reference backend: quantizes ptq-small-32m with
# each CONFIG on DEVICE, then scores the same checkpoint twice, with the backend's kernels and with
# PTQ_FORCE_REFERENCE=1, and prints a Markdown table of both perplexities and their relative difference
# (the issue-4 / issue-7 "whole-model perplexity within 0.1%" check; docs/PERFORMANCE.md, docs/CUDA_BACKEND.md).
#
#   scripts/backend_vs_reference.sh configs/w4a16_rtn_g128.json ...        # DEVICE=cpu DTYPE=float32
#   DEVICE=cuda DTYPE=float16 BUILD=build-gpu scripts/backend_vs_reference.sh configs/*.json
# Environment: BUILD (build), DEVICE (cpu), DTYPE (float32), WORK (/tmp/ptq_backend_vs_reference),
# WINDOWS (32 windows of 512 tokens of the held-out text), PTQ_SHARED_DIR (../shared).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DEVICE=${DEVICE:-cpu}
DTYPE=${DTYPE:-float32}
WORK=${WORK:-/tmp/ptq_backend_vs_reference}
WINDOWS=${WINDOWS:-32}
SHARED="${PTQ_SHARED_DIR:-../shared}/data"
MODEL="$SHARED/models/ptq-small-32m"
TEXT="$SHARED/heldout/gutenberg_heldout.txt"
CALIB="$SHARED/corpus/train_00.txt"
PTQ="$BUILD/tools/ptq"
[ $# -gt 0 ] || { echo "usage: $0 CONFIG.json..." >&2; exit 2; }
[ -x "$PTQ" ] || { echo "$0: $PTQ not built" >&2; exit 1; }
[ -d "$MODEL" ] || { echo "$0: $MODEL not found (../shared/data is needed)" >&2; exit 1; }
mkdir -p "$WORK"
common=(--device "$DEVICE" --dtype "$DTYPE")
ppl() {  # the perplexity of a checkpoint: the backend's kernels, or the reference's under PTQ_FORCE_REFERENCE=1
  "$PTQ" --quiet eval --model "$1" "${common[@]}" --data "$TEXT" --window 512 --max-windows "$WINDOWS" --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["ppl"])'
}
echo "| config | device | dtype | backend ppl | reference ppl | relative difference |"
echo "|---|---|---|---|---|---|"
for cfg in "$@"; do
  name=$(basename "$cfg" .json)
  out="$WORK/$name-$DEVICE-$DTYPE"
  "$PTQ" --quiet quantize -m "$MODEL" -c "$cfg" -o "$out" "${common[@]}" --calib "$CALIB" > "$WORK/$name.quantize.log" 2>&1 ||
    { echo "| $name | quantize failed: $(tail -1 "$WORK/$name.quantize.log") |"; continue; }
  ours=$(ppl "$out")
  reference=$(PTQ_FORCE_REFERENCE=1 ppl "$out")
  python3 -c "import sys; a, b = float(sys.argv[2]), float(sys.argv[3]); print(f'| {sys.argv[1]} | $DEVICE | $DTYPE | {a:.6f} | {b:.6f} | {abs(a / b - 1) * 100:.5f}% |')" \
    "$name" "$ours" "$reference"
done
