#!/usr/bin/env bash
# Runs THERE (after scripts/gpu/build_and_run.sh built build-gpu/), or anywhere ptq is built: `ptq compare`
# of ptq-small-32m, float and each recipe quantized in memory (calibrating on the corpus prefix carried in
# .deps/shared), scored on the held-out text and WikiText-2 test at window 512. Writes the Markdown table to
# $OUT/recipes.md, the JSON to $OUT/recipes.json, progress and errors to $OUT/recipes.err.
#   scripts/gpu/recipes_eval.sh [--device cuda] CONFIG...
# Environment: QUANTIZE_ARGS are added to `ptq compare` (e.g. "--inject-outliers 8:50 --baseline
# w4a16_rtn_g128"); DATA_FILES replaces the texts scored (space-separated paths).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-out/gpu}; mkdir -p "$OUT"
PTQ=${PTQ:-build-gpu/tools/ptq}
DATA=${PTQ_EVAL_SHARED:-.deps/shared}/data
DEVICE=cpu
[ "${1:-}" = "--device" ] && { DEVICE=$2; shift 2; }
data_args=()
for f in ${DATA_FILES:-$DATA/heldout/gutenberg_heldout.txt $DATA/wikitext2/test.txt}; do
  [ -f "$f" ] && data_args+=(--data "$f")
done
# A recipe that fails is a "failed" row (its error in recipes.err) and a non-zero exit; the others still run.
"$PTQ" compare --model "$DATA/models/ptq-small-32m" "${data_args[@]}" --window 512 --batch 16 \
  --calib "$DATA/corpus/train_00.txt" --device "$DEVICE" ${QUANTIZE_ARGS:-} \
  --markdown --json-file "$OUT/recipes.json" "$@" > "$OUT/recipes.md" 2> "$OUT/recipes.err"
status=$?
cat "$OUT/recipes.md"
[ $status -eq 0 ] || tail -5 "$OUT/recipes.err" >&2
exit $status
