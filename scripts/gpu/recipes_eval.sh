#!/usr/bin/env bash
# Runs THERE (after scripts/gpu/build_and_run.sh built build-gpu/), or anywhere ptq is built: quantizes
# ptq-small-32m with each recipe (calibrating on the corpus prefix carried in .deps/shared), evaluates the
# checkpoint on the held-out text at window 512, and writes a Markdown table to $OUT/recipes.md.
#   scripts/gpu/recipes_eval.sh [--device cuda] CONFIG...
# QUANTIZE_ARGS (environment) are added to every `ptq quantize`, e.g. QUANTIZE_ARGS="--inject-outliers 8:50".
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-out/gpu}; mkdir -p "$OUT"
PTQ=${PTQ:-build-gpu/tools/ptq}
DATA=${PTQ_EVAL_SHARED:-.deps/shared}/data
MODEL=$DATA/models/ptq-small-32m
HELDOUT=$DATA/heldout/gutenberg_heldout.txt
CALIB=$DATA/corpus/train_00.txt
DEVICE=cpu
[ "${1:-}" = "--device" ] && { DEVICE=$2; shift 2; }
ppl_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["ppl"])'; }
float_ppl=$("$PTQ" --quiet eval --model "$MODEL" --data "$HELDOUT" --window 512 --batch 16 --device "$DEVICE" --json | ppl_of)
{
  echo "| recipe | weights on disk | quantize s | perplexity | change vs float |"
  echo "|---|---|---|---|---|"
  echo "| float | $(du -cb "$MODEL"/*.safetensors | tail -1 | cut -f1) B | | $float_ppl | |"
} > "$OUT/recipes.md"
for config in "$@"; do
  name=$(basename "${config%.*}")
  out=/tmp/ptq_recipe_$name
  start=$(date +%s.%N)
  if ! "$PTQ" --quiet quantize --model "$MODEL" --config "$config" --calib "$CALIB" --out "$out" --device "$DEVICE" ${QUANTIZE_ARGS:-} \
       --json > /tmp/quantize_$name.json 2> /tmp/quantize_$name.err; then
    { echo "== $name"; cat /tmp/quantize_$name.err; } >> "$OUT/recipes.err"
    echo "| $name | failed: $(tail -1 /tmp/quantize_$name.err) | | | |" >> "$OUT/recipes.md"; continue
  fi
  seconds=$(python3 -c "import time,sys; print(f'{time.time()-float(sys.argv[1]):.1f}')" "$start")
  ppl=$("$PTQ" --quiet eval --model "$out" --data "$HELDOUT" --window 512 --batch 16 --device "$DEVICE" --json | ppl_of)
  python3 -c "import sys; f=float(sys.argv[4]); q=float(sys.argv[5]);
print(f'| {sys.argv[1]} | {sys.argv[2]} B | {sys.argv[3]} | {q:.4f} | {100*(q/f-1):+.3f}% |')" \
    "$name" "$(du -cb "$out"/*.safetensors | tail -1 | cut -f1)" "$seconds" "$float_ppl" "$ppl" >> "$OUT/recipes.md"
done
cat "$OUT/recipes.md"
